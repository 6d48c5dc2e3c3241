"""Choosing the ingestion backend: SENDTRAIL_NATIVE, the fallback, its log line and metric."""

from __future__ import annotations

import json
import logging
import types
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib import metrics, native, tokens
from chalicelib.settings import Settings
from infra.local_runtime import environment

# Every setting without a default (the resource names), with a placeholder value.
REQUIRED_ENV = {f"SENDTRAIL_{name.upper()}": "placeholder"
                for name, field in Settings.model_fields.items() if field.is_required()}


def _missing(name: str) -> types.ModuleType:
    raise ImportError(f"No module named {name!r}")


def _fake_module(**attributes: Any) -> Any:
    """A module with every required attribute (None unless given)."""
    everything = {name: None for name in native.REQUIRED_ATTRIBUTES} | attributes
    return lambda name: types.SimpleNamespace(__version__="9.9", **everything)


def test_off_uses_the_python_reference_without_importing() -> None:
    chosen = native.select("off", import_module=lambda name: pytest.fail("imported"))
    assert (chosen.name, chosen.is_native) == ("python", False)
    token = tokens.mint(tokens.KIND_OPEN, 1, b"k" * 32, "0123456789abcdef", 3, 1)
    assert chosen.verify_token(token, {1: b"k" * 32}).log_id == 3


def test_auto_falls_back_when_the_module_is_missing_or_too_old() -> None:
    assert native.select("auto", import_module=_missing).name == "python"
    too_old = native.select("auto", import_module=lambda name: types.SimpleNamespace(
        __version__="0.1.0", verify_token=None, InvalidToken=ValueError))  # a layer from before the log parser
    assert too_old.name == "python" and "parse_log" in too_old.reason


def test_on_fails_loudly_when_the_module_is_missing() -> None:
    with pytest.raises(native.NativeUnavailable, match="SENDTRAIL_NATIVE=on"):
        native.select("on", import_module=_missing)
    with pytest.raises(native.NativeUnavailable):
        native.select("on", import_module=lambda name: types.SimpleNamespace(verify_token=None))


def test_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError):
        native.select("yes")


def test_native_errors_become_the_reference_exception() -> None:
    class FakeInvalid(ValueError):
        def __init__(self, reason: str) -> None:
            super().__init__(reason)
            self.reason = reason

    def verify_token(token: str, keys: Any, params: str) -> Any:
        if token == "bad":
            raise FakeInvalid("unknown_key")
        return (2, 1, "00" * 8, 7, 1)

    chosen = native.select("on", import_module=_fake_module(verify_token=verify_token, InvalidToken=FakeInvalid))
    assert chosen.verify_token("good", {}) == tokens.TokenClaims(2, 1, "00" * 8, 7, 1)
    with pytest.raises(tokens.InvalidToken) as error:
        chosen.verify_token("bad", {})
    assert error.value.reason == "unknown_key"


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)
    environment.forget_cached_configuration()
    yield monkeypatch
    monkeypatch.undo()
    environment.forget_cached_configuration()


def test_backend_follows_the_setting_and_is_chosen_logged_and_counted_once(
        settings_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    metrics.flush()  # what an earlier test in this process left buffered is not this invocation's
    capsys.readouterr()
    settings_env.setenv("SENDTRAIL_NATIVE", "off")
    with caplog.at_level(logging.INFO, logger="sendtrail.native"):
        first = native.backend()
        assert native.backend() is first
    assert first.name == "python"
    assert [record.getMessage() for record in caplog.records] == ["ingestion backend: python (SENDTRAIL_NATIVE=off)"]
    metrics.flush()  # what the invocation's middleware does at its end
    [metric] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert metric[native.FALLBACK_METRIC] in (1.0, [1.0]) and metric["mode"] == "off"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "sendtrail"


def test_backend_auto_is_native_when_built(settings_env: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sendtrail_native", reason="the native module is not built (make native)")
    settings_env.delenv("SENDTRAIL_NATIVE", raising=False)
    assert native.backend().name == "native"


def test_the_setting_only_takes_the_three_modes(settings_env: pytest.MonkeyPatch) -> None:
    from chalicelib.settings import Settings

    settings_env.setenv("SENDTRAIL_NATIVE", "maybe")
    with pytest.raises(ValidationError):
        Settings()  # type: ignore[call-arg]


def test_a_failing_metric_never_stops_the_choice(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("no stdout")

    native._count(native.select("off"), emit=broken)  # noqa: SLF001
    assert "could not emit NativeFallback" in caplog.text


class _Recording(native.Backend):
    """The reference backend, noting which core functions the workflow asks it for."""

    def __init__(self) -> None:
        super().__init__("off", None, "test")
        object.__setattr__(self, "calls", [])

    def parse_log(self, data: bytes, keys: Any) -> Any:
        self.calls.append("parse_log")  # type: ignore[attr-defined]
        return super().parse_log(data, keys)

    def aggregate(self, new_hits: Any, prior: Any = None, max_hits_per_recipient: int = 200, context: Any = None,
                  summaries: Any = None, first_hits_per_recipient: int | None = None) -> Any:
        self.calls.append("aggregate")  # type: ignore[attr-defined]
        return super().aggregate(new_hits, prior, max_hits_per_recipient, context, summaries,
                                 first_hits_per_recipient)


def test_the_workflow_parses_and_aggregates_through_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.tracking import workflow
    from tests.tracking_logs import KEYS, line, record

    recording = _Recording()
    monkeypatch.setattr(native, "backend", lambda: recording)
    monkeypatch.setattr(workflow, "delivery_log_facts", lambda table, keys: {})
    settings = types.SimpleNamespace(keyring=lambda: types.SimpleNamespace(keys=KEYS), ip_address_mode="full",
                                     delivery_logs_table="unused", tracking_retention_days=30, tracking_layout="items",
                                     tracking_runs_table="unused",
                                     classify_rules_off=[], classify_burst_links=2, classify_burst_window_ms=2000,
                                     classify_min_click_after_send_ms=5000)
    logs = types.SimpleNamespace(read=lambda key: line(record(kind="open")) + b"junk\n")
    tracking = types.SimpleNamespace(get_recipients=lambda keys: {})
    run = workflow.TrackingWorkflow(settings, workflow.Limits(write_concurrency=1), logs=logs,  # type: ignore[arg-type]
                                    tracking=tracking, state=object())  # type: ignore[arg-type]
    parsed, unread = run._read([("2026/01/01/00", "redirection-logs/a.gz")], started=0.0)  # noqa: SLF001
    record_ = run._compute(1, "owner", 0, parsed, "2026/01/01/00", backlog=False)  # noqa: SLF001
    assert recording.calls == ["parse_log", "aggregate"]  # type: ignore[attr-defined]
    assert unread == [] and record_["statistics"]["hits_accepted"] == 1
    assert record_["statistics"]["rejected"] == {"not_json": 1}
