"""SES v2: sending one message, reading the account and the configuration sets.

SendEmail is not idempotent: a retried call may send the message twice. So
the sending client never retries by itself (botocore's retries are off for
it), and `send_raw` sorts every failure into what the caller may safely do:

    SesThrottled      SES refused for now (rate, daily quota) or failed before
                      accepting (5xx, no connection): nothing was sent; back
                      off and try again
    SesBlocked        sending is paused for the account or the configuration
                      set: nothing was sent; try much later
    SesNoConfigurationSet  the configuration set does not exist
    SesRefused        SES will never send this message (rejected, bad address)
    SesAnswerLost     the request may have reached SES but its answer did not
                      (read timeout, connection closed): it may have been
                      sent; never resend it (SES's Send event will tell)

Anything else (AccessDenied, an unknown error) is raised as is.
"""

from __future__ import annotations

from typing import Any, Mapping

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.data import aws

SEND = Config(connect_timeout=5, read_timeout=20, retries={"total_max_attempts": 1})

THROTTLING_CODES = frozenset({"TooManyRequestsException", "LimitExceededException", "Throttling",
                              "ThrottlingException"})
BLOCKED_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})
MISSING_CONFIGURATION_CODES = frozenset({"NotFoundException", "ConfigurationSetDoesNotExistException"})
REFUSED_CODES = frozenset({"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException",
                           "InvalidParameterValue"})


class SesSendError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SesThrottled(SesSendError):
    @property
    def throttling(self) -> bool:
        """True for SES's throttling answers (not for a 5xx or a connection failure)."""
        return self.code in THROTTLING_CODES


class SesBlocked(SesSendError):
    pass


class SesNoConfigurationSet(SesSendError):
    pass


class SesRefused(SesSendError):
    pass


class SesAnswerLost(SesSendError):
    pass


def send_raw(from_address: str, to_address: str, raw_message: bytes, configuration_set: str | None = None,
             tags: Mapping[str, str] | None = None) -> str:
    """Send a raw MIME message; returns SES's message id, or raises one of the errors above."""
    request: dict[str, Any] = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": [to_address]},
        "Content": {"Raw": {"Data": raw_message}},
        "EmailTags": [{"Name": name, "Value": value} for name, value in (tags or {}).items()],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    try:
        return aws.client("sesv2", SEND).send_email(**request)["MessageId"]
    except ClientError as error:
        raise _sorted(error) from None
    except (EndpointConnectionError, ConnectTimeoutError) as error:
        raise SesThrottled("ConnectionFailed", str(error)) from None
    except (ReadTimeoutError, ConnectionClosedError) as error:
        raise SesAnswerLost("AnswerLost", str(error)) from None


def _sorted(error: ClientError) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in THROTTLING_CODES or status >= 500:
        return SesThrottled(code, message)
    if code in BLOCKED_CODES:
        return SesBlocked(code, message)
    if code in MISSING_CONFIGURATION_CODES:
        return SesNoConfigurationSet(code, message)
    if code in REFUSED_CODES:
        return SesRefused(code, message)
    return error


def get_account(config: Any = aws.DEFAULT) -> dict[str, Any]:
    """The SES account: SendQuota (Max24HourSend, MaxSendRate, SentLast24Hours), SendingEnabled, ..."""
    response = aws.client("sesv2", config).get_account()
    response.pop("ResponseMetadata", None)
    return response


def get_configuration_set(name: str) -> dict[str, Any] | None:
    """The configuration set called `name`, or None when SES has none by that name."""
    client = aws.client("sesv2")
    try:
        response = client.get_configuration_set(ConfigurationSetName=name)
    except client.exceptions.NotFoundException:
        return None
    response.pop("ResponseMetadata", None)
    return response
