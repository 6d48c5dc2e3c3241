"""The metrics facade: exact EMF documents, buffered per invocation, never failing the caller."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib import metrics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every EMF document flushed during the test, parsed (POWERTOOLS_SERVICE_NAME set, as in AWS)."""
    lines: list[str] = []
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sendtrail")
    monkeypatch.setenv("SENDTRAIL_STAGE", "prod")
    monkeypatch.setattr(metrics, "clock", lambda: 1_796_000_000.5)
    metrics.discard()
    previous = metrics.set_output(lines.append)
    documents: list[dict[str, Any]] = []
    yield documents
    metrics.set_output(previous)
    metrics.discard()


def flushed(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines: list[str] = []
    previous = metrics.set_output(lines.append)
    metrics.flush()
    metrics.set_output(previous)
    documents.extend(json.loads(line) for line in lines)
    return documents


def test_names_are_unique_and_units_are_cloudwatch_units() -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    not_names = {"NAMESPACE", "STAGE_DIMENSION", "STAGE_VARIABLE", "DEFAULT_STAGE", "COUNT", "SECONDS", "MILLISECONDS"}
    names = [value for name, value in vars(metrics).items()
             if name.isupper() and isinstance(value, str) and name not in not_names]
    assert len(names) == len(set(names)) == 24  # one spelling each
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", name) for name in names)
    assert {metrics.COUNT, metrics.SECONDS, metrics.MILLISECONDS} <= {unit.value for unit in MetricUnit}


def test_a_metric_without_dimensions_is_published_per_stage_only(printed: list[dict[str, Any]]) -> None:
    metrics.emit(metrics.WORKFLOW_RUNS)
    metrics.emit(metrics.WORKFLOW_LAG, 42, metrics.SECONDS)
    [document] = flushed(printed)
    assert document == {
        "_aws": {"Timestamp": 1_796_000_000_500, "CloudWatchMetrics": [{
            "Namespace": "sendtrail", "Dimensions": [["stage"]],
            "Metrics": [{"Name": "WorkflowRuns", "Unit": "Count"},
                        {"Name": "WorkflowLagSeconds", "Unit": "Seconds"}]}]},
        "stage": "prod", "WorkflowRuns": [1.0], "WorkflowLagSeconds": [42.0]}


def test_dimensions_add_a_second_dimension_set_and_values_of_one_invocation_stay_apart(
        printed: list[dict[str, Any]]) -> None:
    metrics.emit(metrics.HITS_REJECTED, reason="expired")
    metrics.emit(metrics.HITS_REJECTED, reason="expired")
    metrics.emit(metrics.HITS_REJECTED, reason="bad_signature")
    documents = flushed(printed)
    assert len(documents) == 2
    by_reason = {document["reason"]: document for document in documents}
    assert by_reason["expired"]["HitsRejected"] == [1.0, 1.0]
    assert by_reason["expired"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage"], ["stage", "reason"]]
    assert all("service" not in document for document in documents)  # alarms name exactly stage (+ reason)


def test_nothing_is_printed_until_flush_and_nothing_twice(printed: list[dict[str, Any]]) -> None:
    metrics.emit(metrics.BOUNCES, type="hard")
    assert printed == []
    assert len(flushed(printed)) == 1
    assert metrics.flush() == 0


def test_a_full_buffer_is_flushed_at_once(printed: list[dict[str, Any]]) -> None:
    lines: list[str] = []
    previous = metrics.set_output(lines.append)
    for _ in range(metrics.MAX_VALUES):
        metrics.emit(metrics.BOUNCES, type="soft")
    metrics.set_output(previous)
    [document] = [json.loads(line) for line in lines]
    assert len(document["Bounces"]) == metrics.MAX_VALUES


def test_a_buffer_of_mixed_metrics_is_flushed_at_once_in_emission_order(printed: list[dict[str, Any]]) -> None:
    lines: list[str] = []
    previous = metrics.set_output(lines.append)
    for index in range(metrics.MAX_VALUES):
        metrics.emit(metrics.BOUNCES if index % 3 else metrics.HITS_REJECTED, index,
                     **({"type": "soft"} if index % 3 else {"reason": "expired"}))
    metrics.set_output(previous)
    rejected, bounces = [json.loads(line) for line in lines]  # as first emitted
    assert bounces["Bounces"] == [float(index) for index in range(metrics.MAX_VALUES) if index % 3]
    assert rejected["HitsRejected"] == [float(index) for index in range(0, metrics.MAX_VALUES, 3)]
    assert metrics.flush() == 0


def test_the_stage_is_read_once_per_container(printed: list[dict[str, Any]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.emit(metrics.WORKFLOW_RUNS)
    flushed(printed)
    monkeypatch.setenv("SENDTRAIL_STAGE", "dev")  # a function's environment never changes under it
    metrics.emit(metrics.WORKFLOW_RUNS)
    flushed(printed)
    metrics.discard()  # as between tests (the local runtime: environment.apply)
    metrics.emit(metrics.WORKFLOW_RUNS)
    assert [document["stage"] for document in flushed(printed)] == ["prod", "prod", "dev"]


def test_emitting_and_flushing_never_raise(printed: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    def broken(line: str) -> None:
        raise OSError("stdout closed")

    previous = metrics.set_output(broken)
    try:
        metrics.emit(metrics.BOUNCES, type="hard")
        metrics.emit(metrics.BOUNCES, "not a number")  # type: ignore[arg-type]
        with caplog.at_level(logging.ERROR, logger="sendtrail.metrics"):
            assert metrics.flush() == 0
    finally:
        metrics.set_output(previous)
    assert "could not emit metric HitsAccepted" in caplog.text or "could not write" in caplog.text


def test_importing_the_facade_does_not_import_powertools() -> None:
    probe = ("import sys; from chalicelib import metrics, observability; metrics.emit(metrics.BOUNCES, type='x');"
             "print(any(name.startswith('aws_lambda_powertools') for name in sys.modules))")
    output = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"
