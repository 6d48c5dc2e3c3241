"""Errors domain code raises for the API to turn into clear 4xx answers."""

from __future__ import annotations


class InvalidField(ValueError):
    """Input that parsed but cannot be accepted; `field` names it (e.g. recipients[3].id)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFound(LookupError):
    """The thing asked for does not exist."""


class Conflict(RuntimeError):
    """The request is valid but not in the current state (e.g. sending a delivery twice)."""


class AffinityNotConfigured(Conflict):
    """A delivery names an affinity sendtrail or SES does not have (Campaign would leave it pending for ever)."""

    code = "affinity_not_configured"

    def __init__(self, affinity: str, message: str) -> None:
        super().__init__(message)
        self.affinity = affinity
