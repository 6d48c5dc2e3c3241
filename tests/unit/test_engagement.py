"""The demo's engagement plan: deterministic, within its time, people who can react, first links first."""

from __future__ import annotations

from collections import Counter

import pytest

from infra.local_runtime import engagement


def message(index: int, local: str = "success") -> dict:
    base = "http://127.0.0.1:8000"
    links = "".join(f'<a href="{base}/r/CLICK{index}x{link}?p=abc">l{link}</a>' for link in range(4))
    return {"to": [f"{local}+{index}@simulator.amazonses.com"],
            "html": (f'<a href="{base}/m/MIRROR{index}">view</a>{links}<a href="{base}/u/OUT{index}">stop</a>'
                     f'<img src="{base}/o/OPEN{index}" width="1">')}


def test_the_plan_is_deterministic_bounded_and_realistic() -> None:
    messages = [message(index) for index in range(2000)] + [message(index, "bounce") for index in range(50)]
    hits = engagement.plan(messages, duration=600, seed=3)
    assert hits == engagement.plan(messages, duration=600, seed=3) != engagement.plan(messages, duration=600, seed=4)
    assert hits == sorted(hits) and all(0 <= hit.at <= 600 for hit in hits)
    assert not any("bounce" in hit.path for hit in hits)
    kinds = Counter(hit.kind for hit in hits)
    openers = {hit.path for hit in hits if hit.kind == "open"}
    assert 0.35 * 2000 < len(openers) < 0.5 * 2000  # about 42 % open
    assert len(openers) < kinds["open"] < 1.45 * len(openers)  # some open again
    assert 0 < kinds["optout"] < 0.05 * len(openers) and 0 < kinds["mirror"] < 0.05 * 2000
    first_opens = sorted(hit.at for hit in hits if hit.kind == "open")
    assert sum(1 for at in first_opens if at < 120) > sum(1 for at in first_opens if at > 480)  # decaying
    clicked = Counter(hit.path.split("x")[-1].split("?")[0] for hit in hits if hit.kind == "click")
    assert clicked["0"] > clicked["1"] > clicked["3"] > 0  # the first link most
    assert all(hit.method == ("POST" if hit.kind == "optout" else "GET") for hit in hits)
    assert all(hit.path.startswith(("/o/", "/r/", "/u/", "/m/")) for hit in hits)


@pytest.mark.parametrize("url", ["http://example.com", "https://127.0.0.1:8000", "http://10.0.0.1:8000"])
def test_hits_go_to_the_local_stack_only(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        engagement.HitSender(url)
