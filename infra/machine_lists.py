"""Refresh the human/machine lists (chalicelib/tracking/data/*.json) from files a user downloads.

Nothing is fetched at run time, here or in the workflow: the user downloads a
provider's published list (Apple's egress-ip-ranges.csv, Microsoft 365's
endpoints JSON, a vendor's page saved as text), runs `sendtrail lists
import-ranges` or `import-agents`, checks the diff, commits and deploys.
An import replaces every entry of that provider and signal, names the source
on each entry, and dates the file's version.
"""

from __future__ import annotations

import csv
import datetime
import io
import ipaddress
import json
from pathlib import Path
from typing import Any, Iterable

from chalicelib.tracking import classify

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ListError(ValueError):
    """The file holds nothing to import, or the arguments name an unknown signal."""


def networks_in(text: str) -> list[Network]:
    """Every address range in a downloaded file: JSON (strings anywhere in it, e.g. Microsoft's `ips`,
    Google's and Apple's `ipv4Prefix`/`ipv6Prefix`), CSV (its first column, e.g. Apple's
    egress-ip-ranges.csv) or text (one range per line, # comments); collapsed."""
    try:
        document = json.loads(text)
    except ValueError:
        candidates = [row[0].strip() for row in csv.reader(io.StringIO(text))
                      if row and row[0].strip() and not row[0].lstrip().startswith("#")]
    else:
        candidates = list(_strings(document))
    found: list[Network] = []
    for candidate in candidates:
        try:
            found.append(ipaddress.ip_network(candidate, strict=False))
        except ValueError:
            continue  # a header, a name, a URL: not a range
    v4 = ipaddress.collapse_addresses(n for n in found if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in found if isinstance(n, ipaddress.IPv6Network))
    return [*v4, *v6]


def _strings(document: Any) -> Iterable[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from _strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from _strings(value)


def import_ranges(text: str, provider: str, signal: str, source: str,
                  path: Path = classify.ADDRESSES_FILE, today: datetime.date | None = None) -> tuple[int, int]:
    """Replace `provider`'s `signal` ranges in the addresses file; (ranges removed, ranges added)."""
    if signal not in classify.ADDRESS_SIGNALS:
        raise ListError(f"signal must be one of {', '.join(classify.ADDRESS_SIGNALS)}, not {signal!r}")
    networks = networks_in(text)
    if not networks:
        raise ListError("no address range found in the file")
    document = json.loads(path.read_text(encoding="utf-8"))
    kept = [entry for entry in document["ranges"] if (entry.get("provider"), entry["signal"]) != (provider, signal)]
    removed = len(document["ranges"]) - len(kept)
    document["ranges"] = kept + [{"network": str(network), "signal": signal, "provider": provider, "source": source}
                                 for network in networks]
    _write(path, document, today)
    classify.load_lists(classify.AGENTS_FILE, path)  # what was written loads
    return removed, len(networks)


def import_agents(text: str, provider: str, signal: str, source: str,
                  path: Path = classify.AGENTS_FILE, today: datetime.date | None = None) -> tuple[int, int]:
    """Replace `provider`'s `signal` markers in the agents file with the file's lines; (removed, added)."""
    if signal not in classify.AGENT_SIGNALS:
        raise ListError(f"signal must be one of {', '.join(classify.AGENT_SIGNALS)}, not {signal!r}")
    markers = list(dict.fromkeys(line.strip() for line in text.splitlines()
                                 if line.strip() and not line.lstrip().startswith("#")))
    if not markers:
        raise ListError("no user-agent marker found in the file")
    document = json.loads(path.read_text(encoding="utf-8"))
    kept = [entry for entry in document["agents"] if (entry.get("provider"), entry["signal"]) != (provider, signal)]
    removed = len(document["agents"]) - len(kept)
    document["agents"] = kept + [{"marker": marker, "signal": signal, "provider": provider, "source": source}
                                 for marker in markers]
    _write(path, document, today)
    classify.load_lists(path, classify.ADDRESSES_FILE)  # what was written loads
    return removed, len(markers)


def _write(path: Path, document: dict[str, Any], today: datetime.date | None) -> None:
    document["version"] = (today or datetime.datetime.now(datetime.timezone.utc).date()).isoformat()
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def summary(agents: Path = classify.AGENTS_FILE, addresses: Path = classify.ADDRESSES_FILE) -> list[dict[str, Any]]:
    """Entries per (list, signal, provider), with each file's version."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, path, key in (("agents", agents, "agents"), ("addresses", addresses, "ranges")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for entry in document[key]:
            group = (name, entry["signal"], entry.get("provider", ""))
            row = rows.setdefault(group, {"list": name, "version": document.get("version", ""),
                                          "signal": group[1], "provider": group[2], "entries": 0})
            row["entries"] += 1
    return list(rows.values())
