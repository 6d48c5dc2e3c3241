"""The cost model's billing rules (bench/cost_model.py), against sums worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from bench import cost_model
from bench.cost_model import Index, item_size, number_size, read_units, table_write_units, write_units

PRICES = cost_model.load_prices()


def test_the_price_table_names_its_source_and_date_for_every_service() -> None:
    for name, section in PRICES.items():
        if isinstance(section, dict):
            assert section["source"].startswith("https://aws.amazon.com/"), name
            assert section["checked"].count("-") == 2, name


@pytest.mark.parametrize(("text", "size"), [
    ("0", 2),  # one digit: 1 + 1
    ("7", 2),
    ("12", 2),  # two digits: 1 + 1
    ("123", 3),  # three digits: 2 + 1
    ("1740823200000", 5),  # trailing zeros trimmed: 17408232, 8 digits: 4 + 1
    ("-12", 3),  # negative: one more
    ("0.0012", 2),  # leading zeros trimmed: 12
    ("1.5E+3", 2),  # the exponent is not a digit: 15
])
def test_number_size(text: str, size: int) -> None:
    assert number_size(text) == size


def test_item_size_counts_names_and_values() -> None:
    item = {
        "delivery_id": {"S": "0a0b0c0d0e0f1011"},  # 11 + 16
        "log_id": {"N": "42"},  # 6 + 2
        "hits": {"B": b"\x00" * 100},  # 4 + 100
        "human": {"BOOL": True},  # 5 + 1
        "tags": {"L": [{"S": "ab"}, {"N": "1"}]},  # 4 + 3 + (2 + 1) + (2 + 1)
        "urls": {"M": {"u4": {"N": "3"}}},  # 4 + 3 + (2 + 2 + 1)
    }
    assert item_size(item) == 27 + 8 + 104 + 6 + 13 + 12
    assert item_size({"B64": {"B": "AAAA"}}) == 3 + 3  # base64 text (moto, the wire): its decoded length
    assert item_size(None) == 0


def test_write_units_round_the_larger_image_up_to_1_kb() -> None:
    assert write_units(0, 1) == 1
    assert write_units(0, 1024) == 1
    assert write_units(0, 1025) == 2
    assert write_units(3000, 100) == 3  # an update that shrinks an item bills its old size
    assert write_units(0, 0) == 1  # a delete of nothing, a failed condition: still a unit
    assert write_units(100, 2048, transactional=True) == 4


def test_read_units_round_up_to_4_kb_and_halve_for_eventual_consistency() -> None:
    assert read_units(0) == 1  # a missing item still costs a unit
    assert read_units(4096) == 1
    assert read_units(4097) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(100, consistent=False) == 0.5
    assert read_units(5000, transactional=True) == 4


def test_global_secondary_index_writes() -> None:
    index = Index("by-recipient", ("recipient_id", "last_hit_at"))
    old = {"pk": {"S": "a"}, "recipient_id": {"S": "r"}, "last_hit_at": {"N": "1"}, "pad": {"S": "x" * 1500}}
    moved = {**old, "last_hit_at": {"N": "2"}}
    grown = {**old, "pad": {"S": "x" * 3000}}
    size_old = 2 + 1 + 12 + 1 + 11 + 2 + 3 + 1500  # 1532 bytes: 2 units
    assert item_size(old) == size_old
    # a new item: the table's put (2 units) and the index's put (2 units)
    assert table_write_units(None, old, [index]) == 4
    # an index key changes: table 2, index delete 2 + put 2
    assert table_write_units(old, moved, [index]) == 6
    # a projected attribute changes, not a key: table 3, index 3 (the larger image, 3032 bytes)
    assert table_write_units(old, grown, [index]) == 6
    # nothing projected changes (the same item again): the table's write only
    assert table_write_units(old, dict(old), [index]) == 2
    # an item without the index keys is not in the (sparse) index
    assert table_write_units(None, {"pk": {"S": "a"}}, [index]) == 1
    # keys only: the entry is the keys, so a change elsewhere does not touch the index
    keys_only = Index("k", ("recipient_id",), "KEYS_ONLY", table_keys=("pk",))
    assert table_write_units(old, grown, [keys_only]) == 3
    # in a transaction the table's write counts twice (the index is updated after it, as usual)
    assert table_write_units(old, moved, [index], transactional=True) == 8


def test_stream_rounding_per_record() -> None:
    sizes = [345, 1024, 1025]  # on demand: 1 + 1 + 2 KB = 4 KB
    kinesis = cost_model.kinesis_on_demand_usd(sizes, PRICES)
    assert kinesis["ingested"] == pytest.approx(4 * 1024 / 1024**3 * 0.08)
    assert kinesis["retrieved"] == pytest.approx(4 * 1024 / 1024**3 * 0.04)
    # provisioned: one PUT payload unit (25 KB) each, and two for a record over 25 KB
    provisioned = cost_model.kinesis_provisioned_usd([345, 25 * 1024 + 1], PRICES)
    assert provisioned["put_payload_units"] == pytest.approx(3 * 0.014 / 1e6)
    # Firehose: 5 KB + 5 KB + 10 KB
    assert cost_model.firehose_usd([345, 5120, 5121], PRICES) == pytest.approx(20 * 1024 / 1024**3 * 0.029)


def test_a_million_of_the_smallest_records_cost_the_per_record_minimums() -> None:
    """The floor the README quotes: 1 KB to Kinesis (in and out) and 5 KB to Firehose for every record."""
    sizes = [345] * 1_000_000
    kinesis = cost_model.kinesis_on_demand_usd(sizes, PRICES)
    assert kinesis["ingested"] + kinesis["retrieved"] == pytest.approx(1e6 * 1024 / 1024**3 * 0.12)  # $0.1144
    assert cost_model.firehose_usd(sizes, PRICES) == pytest.approx(1e6 * 5120 / 1024**3 * 0.029)  # $0.1383


def test_front_doors() -> None:
    assert cost_model.front_door_usd_per_request("rest", PRICES) * 1e6 == pytest.approx(3.50)
    assert cost_model.front_door_usd_per_request("http", PRICES, 2_000) * 1e6 == pytest.approx(1.00)
    assert cost_model.front_door_usd_per_request("http", PRICES, 600_000) * 1e6 == pytest.approx(2.00)
    assert cost_model.front_door_usd_per_request("function_url", PRICES) == 0
    with pytest.raises(ValueError, match="front door"):
        cost_model.front_door_usd_per_request("alb", PRICES)


def test_lambda_duration_and_billing() -> None:
    # 0.25 ms of CPU at 128 MB (128 / 1769 of a core) takes 3.455 ms: billed 4 ms
    duration = cost_model.lambda_duration_ms(0.25, 128, PRICES)
    assert duration == pytest.approx(0.25 * 1769 / 128)
    assert cost_model.lambda_billed_ms(duration, PRICES) == 4
    assert cost_model.lambda_billed_ms(0.01, PRICES) == 1
    assert cost_model.lambda_duration_ms(10, 4096, PRICES) == 10  # one thread gets at most one core
    # a million invocations of 4 ms at 128 MB on x86_64: 500 GB-s
    usd = cost_model.lambda_usd(1e6, 4, 128, "x86_64", PRICES)
    assert usd["requests"] == pytest.approx(0.20)
    assert usd["gb_seconds"] == pytest.approx(500 * 0.0000166667)
    assert cost_model.lambda_usd(1e6, 4, 128, "arm64", PRICES)["gb_seconds"] == pytest.approx(500 * 0.0000133334)


def test_lambdas_own_lines_for_each_invocation_unless_its_system_log_level_is_warn() -> None:
    text = ("START RequestId: 8f507cfc-1c4e-4d2b-9a1e-2b3c4d5e6f70 Version: $LATEST\n"
            "END RequestId: 8f507cfc-1c4e-4d2b-9a1e-2b3c4d5e6f70\n"
            "REPORT RequestId: 8f507cfc-1c4e-4d2b-9a1e-2b3c4d5e6f70\tDuration: 3.54 ms\tBilled Duration: 4 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 128 MB\t\n")
    assert cost_model.lambda_platform_log_bytes("Text", "INFO", 3.54, 4, 128) == len(text) == 263
    assert cost_model.lambda_platform_log_bytes("JSON", "INFO", 3.54, 4, 128) > len(text)  # JSON records
    assert cost_model.lambda_platform_log_bytes("JSON", "WARN", 3.54, 4, 128) == 0
    assert cost_model.lambda_platform_log_bytes("Text", "WARN", 3.54, 4, 128) == len(text)  # needs JSON


def test_the_hit_paths_function_writes_no_line_of_lambdas_own_for_a_hit() -> None:
    """The template's one source: the function that answers hits logs in JSON at system level WARN."""
    from bench.cost import deployment_settings

    settings = deployment_settings()
    assert (settings["hit_log_format"], settings["hit_system_log_level"]) == ("JSON", "WARN")


def test_dynamodb_and_s3_prices() -> None:
    assert cost_model.dynamodb_usd(2e6, 4e6, PRICES) == pytest.approx({"writes": 1.25, "reads": 0.5})
    assert cost_model.s3_usd(1000, 10_000, PRICES) == pytest.approx(0.005 + 0.004)


def test_front_door_read_from_the_template_resources() -> None:
    from bench.cost import front_door

    assert front_door(["AWS::Serverless::Function", "AWS::Kinesis::Stream"]) == "rest"  # Chalice's REST API
    assert front_door(["AWS::ApiGatewayV2::Api"]) == "http"
    assert front_door(["AWS::Serverless::HttpApi"]) == "http"
    assert front_door(["AWS::ApiGatewayV2::Api", "AWS::Lambda::Url"]) == "function_url"


def _bill_by_hand(**settings: Any) -> dict[str, Any]:
    """The bill of simple measurements, worked out by hand below; `settings` change the deployment's."""
    from bench.cost import price

    hit_path = {"open_cpu_us": 256.0, "click_cpu_us": 256.0, "open_log_bytes": 0.0, "click_log_bytes": 0.0}
    records = {"sizes": [345] * 10, "kinds": {"open": 1.0}}
    workflow = {"hits": 1000, "runs": 1, "write_units": 201, "read_units": 41, "s3_put": 2, "s3_get": 1,
                "cpu_s": 1.0, "hits_per_recipient": 10.0,
                "idle": {"write_units": 1, "read_units": 1, "s3_put": 1, "s3_get": 0, "cpu_s": 0.0}}
    deployment = {"front_door": "rest", "architecture": "x86_64", "stream_mode": "ON_DEMAND", "stream_shards": 1,
                  "hit_memory_mb": 128, "workflow_memory_mb": 1024, "firehose_buffer_bytes": 64 * 2**20,
                  "alarm_metrics": 10, "dashboards": 1, "web_acls": 0, "waf_rules": 0,
                  "hit_log_format": "JSON", "hit_system_log_level": "WARN", **settings}
    schedules = {"tracking_workflow": 43_800.0, "delivery_monitor": 43_800.0}
    return price(hit_path, records, workflow, deployment, schedules, PRICES)


def test_a_bill_with_lambdas_own_lines_pays_for_them() -> None:
    quiet, chatty = _bill_by_hand(), _bill_by_hand(hit_log_format="Text", hit_system_log_level="INFO")
    # 0.256 ms of CPU: 3.54 ms, billed 4 ms; START, END and REPORT are 263 bytes a hit, $0.50 a GB
    assert (quiet["platform_log_bytes"], chatty["platform_log_bytes"]) == (0, 263)
    assert chatty["breakdown"]["logs"] == pytest.approx(1e6 * 263 / 2**30 * 0.50)
    assert chatty["usd_per_million_hits"] == pytest.approx(quiet["usd_per_million_hits"] + 1e6 * 263 / 2**30 * 0.50)


def test_a_bill_priced_by_hand() -> None:
    """Every line of the bill from simple measurements, each worked out by hand."""
    bill = _bill_by_hand()
    gb_s = 0.0000166667
    expected = {
        "api": 3.50,
        "waf": 0.0,
        "lambda_requests": 0.20,
        # 0.256 ms of CPU at 128/1769 of a core: 3.54 ms, billed 4 ms at 0.125 GB, a million times
        "lambda_duration": 1e6 * 0.004 * 0.125 * gb_s,
        "logs": 0.0,
        "kinesis": 1e6 * 1024 / 2**30 * (0.08 + 0.04),  # 345 bytes rounded up to 1 KB, in and out
        "firehose": 1e6 * 5120 / 2**30 * 0.029,  # 5 KB each
        # Firehose: 345 MB in 64 MiB objects = 6 PUTs; the workflow: 1 PUT and 1 GET a 1,000 hits beyond idle
        "s3": (6 + 1000) * 0.005 / 1000 + 1000 * 0.0004 / 1000,
        "dynamodb_writes": 200 * 1000 * 0.625 / 1e6,  # 200 units a 1,000 hits beyond idle
        "dynamodb_reads": 40 * 1000 * 0.125 / 1e6,
        # 1 s of CPU a 1,000 hits at 1024/1769 of a core: 1.7275 s at 1 GB, a thousand times
        "workflow_lambda": 1000 * 1.0 * 1769 / 1024 * 1.0 * gb_s,
    }
    assert bill["breakdown"] == pytest.approx(expected)
    assert bill["usd_per_million_hits"] == pytest.approx(sum(expected.values()))
    assert bill["floor"] == pytest.approx({"api": 3.50, "lambda_requests": 0.20, "kinesis": expected["kinesis"],
                                           "firehose": expected["firehose"]})
    assert bill["write_units_per_1000_hits"] == 200
    assert bill["monthly"] == pytest.approx({
        "stream": 730 * 0.04,
        "alarms": 10 * 0.10,
        "dashboard": 3.00,
        "waf": 0.0,
        # every minute: an invocation billed its 1 ms minimum at 1 GB, 1 write and 1 read unit, 1 LIST
        "workflow_idle_runs": 43_800 * (0.20 / 1e6 + 0.001 * gb_s + 0.625 / 1e6 + 0.125 / 1e6 + 0.005 / 1000),
        "other_schedules": 43_800 * 0.20 / 1e6,
    })
