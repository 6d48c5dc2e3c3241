"""The local SES account: SES v2 GetAccount, which moto does not implement.

The send worker reads the account's MaxSendRate (its pace) and whether it can
send at all (SendingEnabled, the 24-hour quota); the API reads the same to
say why a delivery does not move. moto answers GetAccount with
NotImplementedError, so this hook answers it at the botocore level (the way
ses_outbox.py taps SendEmail), from this account's settings and the outbox:
SentLast24Hours counts the messages SES accepted in the last 24 hours, as
SES does. Tests change the account (pause sending, use up the quota, lower
the rate) to see the MTA react. Lambda code is unchanged: it calls GetAccount
as it does in AWS.

The defaults are a production (out of the sandbox) account with a generous
quota, so the local stack and the tests are not held back by the pace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse

from infra.local_runtime.ses_outbox import OUTBOX

DAY_SECONDS = 86_400


@dataclass
class LocalSesAccount:
    max_send_rate: float = 1000.0
    max_24_hour_send: float = 1_000_000.0
    sending_enabled: bool = True
    production_access_enabled: bool = True

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
            "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0},
        }


ACCOUNT = LocalSesAccount()


def reset() -> None:
    """Back to the defaults (between tests)."""
    global ACCOUNT
    defaults = LocalSesAccount()
    for name in defaults.__dataclass_fields__:
        setattr(ACCOUNT, name, getattr(defaults, name))


def _get_account(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse("https://email.local/v2/email/account", 200, {}, None), ACCOUNT.answer()


_HOOK = ("before-call.sesv2.GetAccount", _get_account)


def install() -> None:
    """Answer SES v2 GetAccount in every boto3 client created from now on."""
    if _HOOK not in botocore_handlers.BUILTIN_HANDLERS:
        botocore_handlers.BUILTIN_HANDLERS.append(_HOOK)


def uninstall() -> None:
    while _HOOK in botocore_handlers.BUILTIN_HANDLERS:
        botocore_handlers.BUILTIN_HANDLERS.remove(_HOOK)
