"""Kinesis -> Firehose, emulated: what a KinesisStreamAsSource delivery stream does in AWS.

moto's Firehose stores a delivery stream's Kinesis source but never reads
it. This pump does: it reads the source stream from checkpointed shard
iterators and hands the records to Firehose's PutRecordBatch, which moto
turns into one S3 object per call under the destination prefix and the
hour partition (plain, not gzipped: moto ignores CompressionFormat; the
tracking workflow reads both). Real Firehose buffers up to 60 s; the pump
delivers on every step (about a second), so the local stack is faster, not
different.

Records are handed on only after Firehose accepted them, so a failed step
delivers the same records again on the next one, as Firehose would retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from infra.local_runtime.stack import LocalStack, Worker

logger = logging.getLogger("sendtrail.local.firehose")
MAX_BATCH_RECORDS = 500  # PutRecordBatch limits
MAX_BATCH_BYTES = 4 * 1024 * 1024
PUMP_INTERVAL_SECONDS = 1.0


@dataclass
class KinesisToFirehose:
    stream_name: str
    delivery_stream_name: str
    _iterators: dict[str, str] = field(default_factory=dict)
    _positions: dict[str, str] = field(default_factory=dict)  # shard -> last sequence number delivered
    _clients: tuple[Any, Any] | None = None  # Kinesis and Firehose, made once (a client costs more than a step)

    def _iterator(self, kinesis: Any, shard_id: str) -> str:
        if shard_id in self._iterators:
            return self._iterators[shard_id]
        request: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id}
        if shard_id in self._positions:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                           StartingSequenceNumber=self._positions[shard_id])
        else:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        return kinesis.get_shard_iterator(**request)["ShardIterator"]

    def step(self) -> int:
        """Deliver what the stream has now; returns how many records were delivered."""
        if self._clients is None:
            self._clients = (boto3.client("kinesis"), boto3.client("firehose"))
        kinesis, firehose = self._clients
        delivered = 0
        for shard in kinesis.list_shards(StreamName=self.stream_name)["Shards"]:
            shard_id = shard["ShardId"]
            while True:
                page = kinesis.get_records(ShardIterator=self._iterator(kinesis, shard_id), Limit=MAX_BATCH_RECORDS)
                records = page["Records"]
                if records:
                    self._deliver([record["Data"] for record in records], firehose)
                    self._positions[shard_id] = records[-1]["SequenceNumber"]
                    delivered += len(records)
                if page.get("NextShardIterator"):
                    self._iterators[shard_id] = page["NextShardIterator"]
                if not records or not page.get("NextShardIterator"):
                    break
        return delivered

    def _deliver(self, payloads: list[bytes], firehose: Any) -> None:
        batch: list[dict[str, bytes]] = []
        size = 0
        for payload in payloads:
            if batch and (len(batch) == MAX_BATCH_RECORDS or size + len(payload) > MAX_BATCH_BYTES):
                self._put(batch, firehose)
                batch, size = [], 0
            batch.append({"Data": payload})
            size += len(payload)
        if batch:
            self._put(batch, firehose)

    def _put(self, batch: list[dict[str, bytes]], firehose: Any) -> None:
        response = firehose.put_record_batch(DeliveryStreamName=self.delivery_stream_name, Records=batch)
        if response.get("FailedPutCount"):
            raise RuntimeError(f"Firehose refused {response['FailedPutCount']} records; they will be retried")


def pumps_for(resources: Any) -> list[KinesisToFirehose]:
    """One pump per delivery stream of the template that reads a Kinesis stream."""
    resolver = resources.resolver()
    pumps = []
    for logical_id, spec in resources.template.get("Resources", {}).items():
        if spec.get("Type") != "AWS::KinesisFirehose::DeliveryStream":
            continue
        properties = resolver.resolve(spec.get("Properties", {}))
        if properties.get("DeliveryStreamType") != "KinesisStreamAsSource":
            continue
        stream_arn = properties["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]
        pumps.append(KinesisToFirehose(stream_arn.split("/", 1)[1], resources.refs[logical_id]))
    return pumps


def workers(stack: "LocalStack") -> "list[Worker]":
    from infra.local_runtime.stack import Worker

    return [Worker(f"firehose:{pump.delivery_stream_name}", pump.step, PUMP_INTERVAL_SECONDS)
            for pump in pumps_for(stack.resources)]
