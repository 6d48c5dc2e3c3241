"""Putting hit records into the Kinesis hit stream (the redirection log's source)."""

from __future__ import annotations

from chalicelib.data import aws


def put_hit(stream_name: str, record: bytes, partition_key: str) -> str:
    """Put one newline-terminated record; returns its sequence number.

    The partition key is the recipient (delivery and log id), so one
    recipient's hits stay in order on one shard.
    """
    response = aws.client("kinesis", aws.HIT_PATH).put_record(
        StreamName=stream_name, Data=record, PartitionKey=partition_key
    )
    return response["SequenceNumber"]
