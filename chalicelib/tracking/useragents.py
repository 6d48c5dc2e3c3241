"""User-agent classification for the opens/clicks breakdown: OS, device, browser, mail client.

OS and browser come from ua-parser (the maintained uap-core regexes, pinned
through ua-parser-builtins); the device is a type (Desktop, Mobile, Tablet,
Bot) derived from ua-parser's device and OS, because a breakdown by handset
model is not something a sender acts on. Mail clients are not what ua-parser
knows about, so a small ordered table of markers recognises the clients and
image proxies that fetch the open pixel.

The pure core counts by raw user-agent string; the workflow classifies each
distinct string once (cached here) and sums the counts per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

OTHER = "Other"
DIMENSIONS = ("os", "device", "browser", "mail_client")

# (marker, mail client): the first marker found in the user agent wins.
MAIL_CLIENT_MARKERS = (
    ("GoogleImageProxy", "Gmail (image proxy)"),
    ("YahooMailProxy", "Yahoo Mail (proxy)"),
    ("Thunderbird/", "Thunderbird"),
    ("Outlook-iOS", "Outlook"),
    ("Outlook-Android", "Outlook"),
    ("Microsoft Outlook", "Outlook"),
    ("ms-office", "Outlook"),
    ("MSOffice", "Outlook"),
    ("Microsoft Office/", "Outlook"),
    ("Windows Live Mail", "Windows Live Mail"),
    ("Airmail", "Airmail"),
    ("Spark/", "Spark"),
    ("Superhuman", "Superhuman"),
    ("Postbox", "Postbox"),
    ("eM Client", "eM Client"),
    ("Lotus-Notes", "Lotus Notes"),
)
_DESKTOP_OS = ("Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "Debian", "FreeBSD", "OpenBSD",
               "Mac OS", "macOS")
_MOBILE_OS = ("Windows Phone", "BlackBerry OS", "Symbian OS", "KaiOS", "Firefox OS")


@dataclass(frozen=True)
class UserAgentClass:
    os: str
    device: str
    browser: str
    mail_client: str

    def family(self, dimension: str) -> str:
        return getattr(self, dimension)


@lru_cache(maxsize=8192)
def classify(user_agent: str) -> UserAgentClass:
    """The families of one user-agent string (cached: the workflow sees few distinct strings)."""
    if not user_agent.strip():
        return UserAgentClass(OTHER, OTHER, OTHER, OTHER)
    from ua_parser import parse  # loads the regexes once, on first use

    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else OTHER
    os_family = result.os.family if result.os else OTHER
    device_family = result.device.family if result.device else ""
    device = _device_type(user_agent, os_family, device_family, result.device.brand if result.device else None)
    return UserAgentClass(os=os_family, device=device, browser=browser,
                          mail_client=_mail_client(user_agent, browser, os_family, device))


def _device_type(user_agent: str, os_family: str, device_family: str, brand: str | None) -> str:
    if device_family == "Spider" or brand == "Spider":
        return "Bot"
    if device_family.startswith("iPad") or (brand or "").endswith("Tablet"):
        return "Tablet"
    if os_family == "iOS":
        return "Mobile"
    if os_family == "Android":
        return "Mobile" if "Mobile" in user_agent else "Tablet"
    if os_family in _MOBILE_OS:
        return "Mobile"
    if os_family in _DESKTOP_OS:
        return "Desktop"
    return OTHER


def _mail_client(user_agent: str, browser: str, os_family: str, device: str) -> str:
    for marker, client in MAIL_CLIENT_MARKERS:
        if marker in user_agent:
            return client
    if browser == "Apple Mail":
        return "Apple Mail"
    # iOS Mail renders with a bare WKWebView: no Safari/ or app token after the build number.
    if os_family == "iOS" and browser == "Mobile Safari UI/WKWebView" and "Safari/" not in user_agent:
        return "Apple Mail"
    if browser != OTHER and device != "Bot":
        return "Web browser"  # webmail, or a link opened in a browser
    return OTHER
