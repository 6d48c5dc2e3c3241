"""SES v2's account, emulated: GetAccount and PutAccountSendingAttributes.

moto implements neither (its SES v2 has no account resource), yet the send
worker reads the account's MaxSendRate (its pace) and whether it can send
at all (SendingEnabled, the 24-hour quota), the API and the status check
read the same to say why a delivery does not move, and an operator pauses
sending with PutAccountSendingAttributes. These hooks answer those calls at
the botocore level, before any request leaves (the way ses_outbox.py taps
SendEmail), from whichever process makes them:

- SentLast24Hours counts the messages SES accepted in the last 24 hours
  (the outbox), as SES does;
- while sending is paused, SES v2 SendEmail fails with
  SendingPausedException, as SES does;
- the defaults are a production (out of the sandbox) account with a
  generous quota and a HEALTHY enforcement status, so the local stack and
  the tests are not held back by the pace. Tests change the account (pause
  sending, use up the quota, lower the rate) to see sendtrail react.

Lambda code is unchanged: it calls SES v2 as it does in AWS.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from infra.local_runtime import botocore_hooks
from infra.local_runtime.ses_outbox import OUTBOX

DAY_SECONDS = 86_400


@dataclass
class LocalSesAccount:
    max_send_rate: float = 1000.0
    max_24_hour_send: float = 1_000_000.0
    sending_enabled: bool = True
    production_access_enabled: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set_sending(self, enabled: bool) -> None:
        with self._lock:
            self.sending_enabled = enabled

    def answer(self) -> dict[str, Any]:
        """GetAccount's answer (the fields sendtrail reads, and the ones SES always gives)."""
        since = time.time() - DAY_SECONDS
        sent = sum(1 for message in OUTBOX.messages() if message.accepted_at >= since)
        return {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": self.production_access_enabled,
            "SendQuota": {"Max24HourSend": self.max_24_hour_send, "MaxSendRate": self.max_send_rate,
                          "SentLast24Hours": float(sent)},
            "SendingEnabled": self.sending_enabled,
            "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        }


ACCOUNT = LocalSesAccount()


def reset() -> None:
    """Back to the defaults (between tests)."""
    defaults = LocalSesAccount()
    for settable in dataclasses.fields(LocalSesAccount):
        if not settable.name.startswith("_"):
            setattr(ACCOUNT, settable.name, getattr(defaults, settable.name))


def _answer(parsed: dict[str, Any], status: int = 200) -> tuple[AWSResponse, dict[str, Any]]:
    parsed["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}
    return AWSResponse("https://email.local/v2/email/account", status, {}, None), parsed


def _get_account(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    return _answer(ACCOUNT.answer())


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
    reset()
