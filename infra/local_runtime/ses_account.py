"""SES v2's account operations, emulated: GetAccount and PutAccountSendingAttributes.

moto implements neither (its SES v2 has no account resource), yet the status
check reads the account (sending enabled, quota) and an operator pauses
sending with PutAccountSendingAttributes. These hooks answer both calls at
the botocore level, before any request leaves (the way ses_outbox.py taps
SendEmail), from whichever process makes them:

- the sending flag lives here (one account, enabled until paused); while it
  is off, SES v2 SendEmail fails with SendingPausedException, as SES does;
- the send quota is moto's own (SES's GetSendQuota: its 24-hour maximum,
  rate and the messages it has sent);
- the account has production access and a HEALTHY enforcement status (the
  local SES sends to any address).

Lambda code is unchanged: it calls SES v2 as it does in AWS.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from infra.local_runtime import botocore_hooks


class SesAccount:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sending_enabled = True

    def set_sending(self, enabled: bool) -> None:
        with self._lock:
            self.sending_enabled = enabled

    def reset(self) -> None:
        self.set_sending(True)


ACCOUNT = SesAccount()


def _answer(parsed: dict[str, Any], status: int = 200) -> tuple[AWSResponse, dict[str, Any]]:
    parsed["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}
    return AWSResponse("https://email.local/v2/email/account", status, {}, None), parsed


def _get_account(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    quota = boto3.client("ses").get_send_quota()
    return _answer({
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": "HEALTHY",
        "ProductionAccessEnabled": True,
        "SendingEnabled": ACCOUNT.sending_enabled,
        "SendQuota": {"Max24HourSend": quota["Max24HourSend"], "MaxSendRate": quota["MaxSendRate"],
                      "SentLast24Hours": quota["SentLast24Hours"]},
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
    })


_PARAMS_KEY = "sendtrail_account_params"


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_PARAMS_KEY] = dict(params)


def _put_account_sending_attributes(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    ACCOUNT.set_sending(bool(context.get(_PARAMS_KEY, {}).get("SendingEnabled", False)))
    return _answer({})


def _refuse_while_paused(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    if ACCOUNT.sending_enabled:
        return None
    return _answer({"Error": {"Code": "SendingPausedException",
                              "Message": "Email sending is disabled for this account."}}, status=400)


_HOOKS = [
    ("before-call.sesv2.GetAccount", _get_account),
    ("before-parameter-build.sesv2.PutAccountSendingAttributes", _remember_params),
    ("before-call.sesv2.PutAccountSendingAttributes", _put_account_sending_attributes),
    ("before-call.sesv2.SendEmail", _refuse_while_paused),
]


def install() -> None:
    """Answer SES v2's account calls in every boto3 client created from now on."""
    botocore_hooks.install(_HOOKS)


def uninstall() -> None:
    botocore_hooks.uninstall(_HOOKS)
    ACCOUNT.reset()
