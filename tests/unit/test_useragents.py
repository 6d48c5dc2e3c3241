"""User-agent classification: ua-parser families, device types, mail clients."""

from __future__ import annotations

import pytest

from chalicelib.tracking.useragents import UserAgentClass, classify

CASES = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
     "Safari/537.36", UserAgentClass("Windows", "Desktop", "Chrome", "Web browser")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
     UserAgentClass("iOS", "Mobile", "Mobile Safari UI/WKWebView", "Apple Mail")),
    ("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
     UserAgentClass("iOS", "Tablet", "Mobile Safari UI/WKWebView", "Apple Mail")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
     "Mobile/15E148 Safari/604.1", UserAgentClass("iOS", "Mobile", "Mobile Safari", "Web browser")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     UserAgentClass("Mac OS X", "Desktop", "Apple Mail", "Apple Mail")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0",
     UserAgentClass("Windows", "Desktop", "Thunderbird", "Thunderbird")),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
     UserAgentClass("Windows", "Desktop", "Outlook", "Outlook")),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     UserAgentClass("Windows", "Desktop", "GmailImageProxy", "Gmail (image proxy)")),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     UserAgentClass("Other", "Bot", "YahooMailProxy", "Yahoo Mail (proxy)")),
    ("Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile "
     "Safari/537.36", UserAgentClass("Android", "Mobile", "Chrome Mobile", "Web browser")),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
     UserAgentClass("Android", "Tablet", "Chrome", "Web browser")),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     UserAgentClass("Other", "Bot", "Googlebot", "Other")),
    ("", UserAgentClass("Other", "Other", "Other", "Other")),
    ("e2e-browser/1.0", UserAgentClass("Other", "Other", "Other", "Other")),
]


@pytest.mark.parametrize(("agent", "expected"), CASES)
def test_classify(agent: str, expected: UserAgentClass) -> None:
    assert classify(agent) == expected
