"""The local stack's Kinesis keeps every put when threads put and read at once (infra/local_runtime/moto_kinesis.py)."""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws

from infra.local_runtime import moto_kinesis


@mock_aws
def test_concurrent_puts_and_reads_keep_every_record() -> None:
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    kinesis.create_stream(StreamName="hits-under-load", ShardCount=1)
    shard = kinesis.list_shards(StreamName="hits-under-load")["Shards"][0]["ShardId"]
    errors: list[BaseException] = []

    def put(writer: int) -> None:
        try:
            for index in range(40):
                kinesis.put_record(StreamName="hits-under-load", Data=f"{writer}-{index}\n".encode(), PartitionKey="k")
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    def read() -> None:
        try:
            for _ in range(20):
                iterator = kinesis.get_shard_iterator(StreamName="hits-under-load", ShardId=shard,
                                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=put, args=(writer,)) for writer in range(6)] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    iterator = kinesis.get_shard_iterator(StreamName="hits-under-load", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    assert errors == []
    assert sorted(record["Data"] for record in records) == sorted(
        f"{writer}-{index}\n".encode() for writer in range(6) for index in range(40))
    assert len({record["SequenceNumber"] for record in records}) == 240


@pytest.mark.parametrize(("position", "limit"), [(0, None), (0, 3), (4, 2), (9, 5), (10, 5), (12, 1), (7, 0)])
def test_reads_from_the_position_answer_as_moto_does(position: int, limit: int | None) -> None:
    """get_records starts at the iterator's position (not moto's scan from the first record), same answer."""
    from moto.kinesis.models import Shard

    moto_kinesis.install()
    shard = Shard(0, 0, 2**128)
    for index in range(10):
        shard.put_record("k", f"{index}", "")
    for record in shard.records.values():
        record.created_at = 1000.0 + record.sequence_number  # a second apart
    fast = moto_kinesis._get_records(shard, str(position), limit)
    slow = moto_kinesis._installed["moto_get_records"](shard, str(position), limit)
    assert ([record.data for record in fast[0]], fast[1], fast[2]) == (
        [record.data for record in slow[0]], slow[1], slow[2])
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (1, 10)
    del shard.records[5]  # not consecutive any more: moto's own reading
    assert [record.sequence_number for record in shard.get_records("3", None)[0]] == [4, 6, 7, 8, 9, 10]
