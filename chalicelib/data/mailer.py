"""Sending one message through SES v2."""

from __future__ import annotations

from typing import Mapping

from chalicelib.data import aws


def send_raw(from_address: str, to_address: str, raw_message: bytes, configuration_set: str | None = None,
             tags: Mapping[str, str] | None = None) -> str:
    """Send a raw MIME message; returns SES's message id."""
    request = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": [to_address]},
        "Content": {"Raw": {"Data": raw_message}},
        "EmailTags": [{"Name": name, "Value": value} for name, value in (tags or {}).items()],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return aws.client("sesv2").send_email(**request)["MessageId"]
