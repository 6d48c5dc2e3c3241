"""Affinities: checking that the way a delivery's mail leaves is really configured.

An affinity is declared once: infra/template.yaml creates its SES
configuration set (and dedicated IP pool) and names it in
SENDTRAIL_AFFINITIES, which Settings reads. SES (and moto) would accept a
message naming any configuration set, so a delivery whose affinity is
missing would sit in start pending for ever, as in Campaign. sendtrail
refuses it instead, naming the affinity, when the delivery is created, when
it is sent, and at every chunk a worker sends (a set deleted meanwhile fails
the delivery rather than stalling it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from chalicelib.data import mailer
from chalicelib.errors import AffinityNotConfigured
from chalicelib.settings import Affinity, Settings


@dataclass(frozen=True)
class ResolvedAffinity:
    name: str
    affinity: Affinity

    @property
    def configuration_set(self) -> str:
        return self.affinity.configuration_set


def resolve(name: Optional[str], settings: Settings) -> ResolvedAffinity:
    """The affinity called `name` (the default for None) from the settings; AffinityNotConfigured otherwise."""
    chosen = name or settings.default_affinity
    affinity = settings.affinity(chosen)
    if affinity is None:
        configured = ", ".join(sorted(settings.affinities)) or "none"
        raise AffinityNotConfigured(chosen, f"affinity {chosen!r} is not configured (configured affinities: "
                                            f"{configured})")
    return ResolvedAffinity(chosen, affinity)


def check(name: Optional[str], settings: Settings) -> ResolvedAffinity:
    """resolve(), and the affinity's configuration set exists in SES and sends through its pool."""
    resolved = resolve(name, settings)
    found = mailer.get_configuration_set(resolved.configuration_set)
    if found is None:
        raise AffinityNotConfigured(resolved.name, f"affinity {resolved.name!r} is not configured in SES: its "
                                                   f"configuration set {resolved.configuration_set!r} does not exist")
    pool = (found.get("DeliveryOptions") or {}).get("SendingPoolName")
    if resolved.affinity.ip_pool and pool != resolved.affinity.ip_pool:
        raise AffinityNotConfigured(resolved.name, f"affinity {resolved.name!r} is not configured in SES: its "
                                                   f"configuration set {resolved.configuration_set!r} sends "
                                                   f"through {pool or 'the shared IPs'}, not the dedicated IP pool "
                                                   f"{resolved.affinity.ip_pool!r}")
    return resolved
