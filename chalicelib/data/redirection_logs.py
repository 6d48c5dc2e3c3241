"""The redirection-log bucket: Firehose's log objects, fallback writes, quarantine, run records.

Layout of the bucket (infra/template.yaml declares it and its lifecycle):

    redirection-logs/YYYY/MM/DD/HH/<name>     log objects: Firehose's (gzip) from the hit
                                              stream, and from the fallback delivery stream
                                              the hit path puts into when Kinesis failed;
                                              one record each when that failed too
                                              (`fallback-<hit id>`, plain)
    redirection-errors/...                    Firehose's own delivery failures
    redirection-quarantine/<hour>/<name>.jsonl  the workflow's rejected lines, with reasons
    redirection-quarantine/objects/<hour>/<name>  an object that could not be read at all
    tracking-workflow/runs/<run>-<owner>.json.gz  the workflow's write-ahead run records

The hit path imports this module (fallback writes), so it stays boto3 and
the standard library only.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from typing import Any, Iterator

from chalicelib.data import aws

LOG_PREFIX = "redirection-logs/"
QUARANTINE_PREFIX = "redirection-quarantine/"
RUN_RECORD_PREFIX = "tracking-workflow/runs/"
FALLBACK_PREFIX = "fallback-"
_LOG_KEY = re.compile(r"^redirection-logs/(\d{4}/\d{2}/\d{2}/\d{2})/([^/]+)$")


def hour_partition(at_ms: int) -> str:
    """'YYYY/MM/DD/HH' (UTC) of a time in ms: the partition Firehose writes an object under."""
    return time.strftime("%Y/%m/%d/%H", time.gmtime(at_ms / 1000))


def object_hour(key: str) -> str | None:
    """The hour partition of a log object's key, or None when the key is not a log object's."""
    match = _LOG_KEY.match(key)
    return match.group(1) if match else None


def fallback_key(hit_id: str, at_ms: int) -> str:
    return f"{LOG_PREFIX}{hour_partition(at_ms)}/{FALLBACK_PREFIX}{hit_id}"


def put_fallback_stream(delivery_stream: str, record: bytes) -> None:
    """Put one hit record into the fallback delivery stream (when the Kinesis put failed).

    Firehose buffers what it is given and writes it, batched and gzipped,
    under the same redirection-logs/ hour prefixes as the hit stream's
    delivery stream (infra/template.yaml, RedirectionLogFallbackStream).
    """
    aws.client("firehose", aws.HIT_PATH).put_record(DeliveryStreamName=delivery_stream, Record={"Data": record})


def put_fallback(bucket: str, record: bytes, hit_id: str, at_ms: int) -> str:
    """Write one hit record as its own log object (when both streams failed); returns its key.

    The key is made from the hit id, so writing the same record twice makes one
    object; a record that reached both Kinesis and this object is counted once
    by the workflow, which drops repeated hit ids.
    """
    key = fallback_key(hit_id, at_ms)
    aws.client("s3", aws.HIT_PATH).put_object(Bucket=bucket, Key=key, Body=record,
                                              ContentType="application/x-ndjson")
    return key


class RedirectionLogStore:
    def __init__(self, bucket: str, config: Any = aws.DEFAULT) -> None:
        self.bucket = bucket
        self._config = config

    @property
    def _s3(self) -> Any:
        return aws.client("s3", self._config)

    def list_log_objects(self, start_after: str | None = None, max_pages: int = 50) -> Iterator[tuple[str, int]]:
        """(key, last modified in ms) of log objects in key order (= hour order), from just after `start_after`."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": LOG_PREFIX, "MaxKeys": 1000}
        if start_after:
            request["StartAfter"] = start_after
        for _ in range(max_pages):
            page = self._s3.list_objects_v2(**request)
            for entry in page.get("Contents", []):
                yield entry["Key"], int(entry["LastModified"].timestamp() * 1000)
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def read(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put_quarantine(self, source_key: str, rejections: list[dict[str, Any]]) -> str:
        """The rejected lines of one log object, one JSON line each (same key on a retry)."""
        key = QUARANTINE_PREFIX + source_key[len(LOG_PREFIX):] + ".jsonl"
        body = "".join(json.dumps({"source": source_key, **rejection}, separators=(",", ":")) + "\n"
                       for rejection in rejections)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode("utf-8"),
                            ContentType="application/x-ndjson")
        return key

    def copy_to_quarantine(self, source_key: str) -> str:
        """A whole object that could not be read (bad gzip, too large), kept as it was."""
        key = QUARANTINE_PREFIX + "objects/" + source_key[len(LOG_PREFIX):]
        self._s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key})
        return key

    def put_run_record(self, name: str, record: dict[str, Any]) -> str:
        key = f"{RUN_RECORD_PREFIX}{name}.json.gz"
        from chalicelib.data import item_json  # the workflow's alone: the hit path imports this module lean

        body = gzip.compress(item_json.dumps(record), compresslevel=5)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
                            ContentEncoding="gzip")
        return key

    def get_run_record(self, key: str) -> dict[str, Any]:
        return json.loads(gzip.decompress(self.read(key)))
