"""Which recipients of a new delivery are ignored before anything is sent, and why.

Campaign's preparation excludes addresses it can tell are unusable without
sending: a missing or malformed address (address_not_specified when there is
no mailbox@domain shape at all, invalid_domain when the domain part is not a
domain name) and an address that an earlier recipient of the same delivery
already has (duplicate: one person, one message; the first recipient with
the address is kept). These logs are created `ignored` with their reason.
Quarantined and denylisted addresses are excluded later, by the send worker,
when each chunk is sent: an address's state can change between creation and
sending, and the moment of sending is the one that counts.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from chalicelib.mta.reasons import ADDRESS_NOT_SPECIFIED, DUPLICATE, IGNORED, INVALID_DOMAIN, Failure

# No whitespace (every line break included), control character or lone surrogate: an address goes
# into the To: header as it is.
_NEVER_IN_ADDRESS = r"\s\x00-\x1f\x7f-\x9f\ud800-\udfff"
_MAILBOX = re.compile(rf'^[^@<>"(),;:\\\[\]{_NEVER_IN_ADDRESS}]+@[^@{_NEVER_IN_ADDRESS}]+$')
_DOMAIN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$")


def normalise(address: str) -> str:
    """The form addresses are compared and stored in (the addresses table is keyed by it)."""
    return address.strip().lower()


def stored_form(address: str) -> str:
    """The form a recipient's address is stored and sent in: no surrounding whitespace, the domain lower-cased.

    The local part keeps its case (RFC 5321 lets a mailbox tell them apart).
    """
    local, at, domain = address.strip().rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address.strip()


def address_problem(address: str) -> Optional[Failure]:
    """Why `address` cannot be sent to, or None."""
    address = address.strip()
    if not _MAILBOX.match(address):
        return Failure(IGNORED, ADDRESS_NOT_SPECIFIED, "not an email address")
    domain = address.rsplit("@", 1)[1]
    if not _DOMAIN.match(domain):
        return Failure(IGNORED, INVALID_DOMAIN, f"{domain!r} is not a domain name")
    return None


def exclusions(addresses: Iterable[str]) -> list[Optional[Failure]]:
    """For each address in order: why it is ignored at preparation, or None to send it."""
    seen: set[str] = set()
    found: list[Optional[Failure]] = []
    for address in addresses:
        problem = address_problem(address)
        if problem is None:
            key = normalise(address)
            if key in seen:
                problem = Failure(IGNORED, DUPLICATE, "an earlier recipient of this delivery has this address")
            seen.add(key)
        found.append(problem)
    return found
