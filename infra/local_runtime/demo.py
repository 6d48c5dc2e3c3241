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
