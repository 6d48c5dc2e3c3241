"""The demo delivery the local stack seeds and sends."""

from __future__ import annotations

from typing import Any

SIMULATOR = "simulator.amazonses.com"

DEMO_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>The sendtrail gazette</title></head>
<body style="margin:0;background:#f3f4f6;font-family:Helvetica,Arial,sans-serif">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
  <table role="presentation" width="600" cellpadding="24" cellspacing="0" style="background:#ffffff">
    <tr><td>
      <p style="font-size:12px;color:#666">Trouble reading this? <a href="{{mirror_url}}">View it in your browser</a>.</p>
      <h1 style="font-size:24px">Hello {{first_name}},</h1>
      <p>Our autumn collection is here. <a href="https://shop.example.com/autumn?utm_source=gazette&amp;utm_medium=email">Browse the collection</a>.</p>
      <p>Members get early access: <a href="https://shop.example.com/members/{{member_id}}?ref=gazette#offers">your member offers</a>.</p>
      <table role="presentation" width="100%"><tr>
        <td><a href="https://shop.example.com/autumn?utm_source=gazette&amp;utm_medium=email"><img src="https://shop.example.com/img/autumn.jpg" alt="Autumn collection" width="260"></a></td>
        <td><a href="https://blog.example.com/posts/how-we-track" title="Blog">How we measure</a></td>
      </tr></table>
      <p>Questions? <a href="mailto:help@example.com">Write to us</a>.</p>
      <p style="font-size:12px;color:#666">You receive this because you subscribed.
        <a href="{{unsubscribe_url}}">Unsubscribe</a>.</p>
    </td></tr>
  </table>
</td></tr></table>
</body>
</html>
"""

DEMO_TEXT = """Hello {{first_name}},

Our autumn collection is here: https://shop.example.com/autumn?utm_source=gazette&utm_medium=email

Unsubscribe: {{unsubscribe_url}}
"""


def demo_delivery() -> dict[str, Any]:
    """A delivery to the SES mailbox simulator: two successes, a bounce and a complaint."""
    recipients = [
        ("ann", f"success+ann@{SIMULATOR}", "Ann"),
        ("bob", f"success+bob@{SIMULATOR}", "Bob"),
        ("carol", f"bounce@{SIMULATOR}", "Carol"),
        ("dave", f"complaint@{SIMULATOR}", "Dave"),
    ]
    return {
        "name": "Autumn gazette",
        "subject": "{{first_name}}, the autumn collection is here",
        "from_address": "The Gazette <gazette@example.com>",
        "html": DEMO_HTML,
        "text": DEMO_TEXT,
        "recipients": [
            {"id": recipient_id, "email": email, "attributes": {"first_name": name, "member_id": f"m-{recipient_id}"}}
            for recipient_id, email, name in recipients
        ],
    }


# --- the large demo: a few thousand recipients who react over the first minutes --------------------

DEMO_MODES = ("large", "small", "off")
LARGE_DEMO_RECIPIENTS = 2_000
LARGE_DEMO_SECONDS = 600.0
FIRST_NAMES = ("Ada", "Bruno", "Chloé", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Lars",
               "Maya", "Nils", "Olu", "Priya", "Quentin", "Rosa", "Sami", "Tess", "Umar", "Vera", "Wen", "Yara")
# The mailbox simulator's outcomes, per 200 recipients: most are delivered, a few bounce or complain.
SIMULATOR_MIX = (("success", 186), ("bounce", 6), ("ooto", 3), ("complaint", 2), ("suppressionlist", 3))


def demo_mode(value: str | None) -> str:
    """SENDTRAIL_DEMO: large (the default), small (the four-message demo only) or off."""
    mode = (value or "large").strip().lower()
    if mode not in DEMO_MODES:
        raise ValueError(f"SENDTRAIL_DEMO must be one of {', '.join(DEMO_MODES)}, not {value!r}")
    return mode


def large_demo_delivery(recipients: int = LARGE_DEMO_RECIPIENTS) -> dict[str, Any]:
    """The demo's content to `recipients` labelled mailbox simulator addresses (success+17@..., bounce+18@...)."""
    outcomes = [outcome for outcome, share in SIMULATOR_MIX for _ in range(share)]
    people = []
    for index in range(1, recipients + 1):
        outcome = outcomes[(index * 7919) % len(outcomes)]  # spread evenly, the same every time
        name = FIRST_NAMES[index % len(FIRST_NAMES)]
        people.append({"id": f"reader-{index:05d}", "email": f"{outcome}+{index}@{SIMULATOR}",
                       "attributes": {"first_name": name, "member_id": f"m-{index:05d}"}})
    return {**demo_delivery(), "name": "Autumn gazette (demo audience)", "recipients": people}


def run_engagement_demo(api: Any, recipients: int = LARGE_DEMO_RECIPIENTS, seconds: float = LARGE_DEMO_SECONDS,
                        seed: int = 2026, stop: Any = None, announce: Any = print) -> dict[str, Any]:
    """Create and send the large demo through the API; its recipients react as their messages arrive.

    Everything goes through the API and the public hit endpoints of the
    stack `api` points at (a loopback address): the delivery is created and
    sent, the messages SES accepted are read from the local outbox as they
    come, and each batch's engagement plan is played over `seconds` from
    when it was sent. Returns the delivery id and the hits answered.
    """
    import urllib.request

    from infra.local_runtime import engagement

    # S310/B310 (URL schemes): the local stack's own http URL (ApiClient checks the scheme).
    with urllib.request.urlopen(f"{api.base_url}/r/test", timeout=10) as answer:  # noqa: S310  # nosec B310
        if answer.status != 200:
            raise RuntimeError(f"{api.base_url}/r/test answers {answer.status}: no demo traffic")
    read = {"offset": len(api.get("/local/outbox"))}  # what was sent before belongs to other deliveries
    delivery_id = api.post("/api/deliveries", large_demo_delivery(recipients))["id"]
    api.post(f"/api/deliveries/{delivery_id}/send")
    announce(f"Demo delivery {delivery_id}: {recipients:,} mailbox simulator addresses; they open, click and "
             f"opt out through the hit endpoints over {seconds / 60:g} minutes from their message's arrival")

    def new_messages() -> list[dict[str, Any]]:
        batch = api.get(f"/local/outbox?from={read['offset']}")
        read["offset"] += len(batch)
        return [message for message in batch if (message.get("tags") or {}).get("delivery_id") == delivery_id]

    def sending_done() -> bool:
        return api.get(f"/api/deliveries/{delivery_id}")["state"] in ("finished", "stopped", "failed")

    answered = engagement.play_as_sent(new_messages, sending_done, api.base_url, seconds, seed=seed, stop=stop)
    announce(f"Demo delivery {delivery_id}: "
             + ", ".join(f"{count:,} {kind}" for kind, count in sorted(answered.items())))
    return {"delivery_id": delivery_id, "answered": dict(answered)}
