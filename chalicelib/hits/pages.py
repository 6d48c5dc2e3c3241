"""The pages a person may see on the tracking domain.

Whoever follows a broken, tampered or expired link sees a short, friendly
page, never an error document or a stack trace, and is never redirected
anywhere we did not register.
"""

from __future__ import annotations

from html import escape

from chalice import Response

_STYLE = (
    "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;background:#f5f6f8;color:#222;"
    "margin:0;padding:0}main{max-width:32rem;margin:12vh auto;background:#fff;border-radius:8px;"
    "padding:2rem 2.25rem;box-shadow:0 1px 4px rgba(0,0,0,.08)}h1{font-size:1.35rem;margin:0 0 .75rem}"
    "p{line-height:1.5}button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;"
    "background:#1f6feb;color:#fff;cursor:pointer}"
)
NO_STORE = "no-store, no-cache, must-revalidate, private"

# The mirror page shows sender-written, recipient-personalised HTML on the tracking domain (the
# sender's): a sandbox with no scripts (an opaque origin: no cookies, no storage), nothing loaded
# but images, styles and fonts, never framed, never sniffed as anything but HTML, and its URL (a
# recipient's token) never sent on as a referrer. Links still open, in new tabs too.
MIRROR_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox; "
              "default-src 'none'; img-src https: http: data: cid:; style-src 'unsafe-inline' https:; "
              "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MIRROR_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": NO_STORE,
    "Content-Security-Policy": MIRROR_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def page(status: int, title: str, paragraphs: list[str], extra_html: str = "",
         headers: dict[str, str] | None = None) -> Response:
    body = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>"
        + "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
        + extra_html
        + "</main></body></html>"
    )
    return Response(body=body, status_code=status,
                    headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": NO_STORE, **(headers or {})})


def link_not_found() -> Response:
    return page(404, "This link is not valid",
                ["The address you followed was not found. It may have been copied incompletely or altered.",
                 "If you copied it from an email, please use the link in the message itself."])


def link_expired() -> Response:
    return page(410, "This link has expired",
                ["The message this link comes from is no longer available.",
                 "Links in our emails stay valid for a limited time."])


def temporarily_unavailable() -> Response:
    return page(503, "Please try again in a moment",
                ["We could not complete your request just now. Nothing was lost; please try again."],
                headers={"Retry-After": "30"})


def unsubscribe_confirmation(action_path: str) -> Response:
    form = (f"<form method=\"post\" action=\"{escape(action_path)}\">"
            "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
            "<button type=\"submit\">Unsubscribe</button></form>")
    return page(200, "Unsubscribe from these emails?",
                ["Confirm below and you will not receive these emails any more."], form)


def unsubscribed(already: bool) -> Response:
    if already:
        return page(200, "You are already unsubscribed", ["Your request had been recorded. Nothing more to do."])
    return page(200, "You are unsubscribed", ["You will not receive these emails any more."])
