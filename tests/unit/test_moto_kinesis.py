"""The local stack's Kinesis keeps every put when threads put and read at once (infra/local_runtime/moto_kinesis.py)."""

from __future__ import annotations

import threading

import boto3
from moto import mock_aws


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
