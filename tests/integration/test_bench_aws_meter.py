"""The cost model's meter (bench/aws_meter.py) on moto: units of real requests, against sums worked out by hand."""

from __future__ import annotations

import boto3
import pytest

from bench.aws_meter import metered

TABLE = "sendtrail-meter-check"
PAD = "x" * 1500  # pk(2)+"a"(1) + recipient_id(12)+"r"(1) + last_hit_at(11)+"1"(2) + pad(3)+1500 = 1532 bytes


@pytest.fixture
def table(aws: None) -> None:
    boto3.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "recipient_id", "AttributeType": "S"},
                              {"AttributeName": "last_hit_at", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-recipient",
                                 "KeySchema": [{"AttributeName": "recipient_id", "KeyType": "HASH"},
                                               {"AttributeName": "last_hit_at", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "ALL"}}])


def test_write_units_follow_item_sizes_and_the_index(table: None) -> None:
    with metered() as meter:
        dynamodb = boto3.session.Session().client("dynamodb")
        item = {"pk": {"S": "a"}, "recipient_id": {"S": "r"}, "last_hit_at": {"N": "1"}, "pad": {"S": PAD}}
        dynamodb.put_item(TableName=TABLE, Item=item)
        assert meter.total_write_units() == 2 + 2  # the table's 1,532 bytes, and the index's new entry
        meter.reset()
        dynamodb.update_item(TableName=TABLE, Key={"pk": {"S": "a"}}, UpdateExpression="SET last_hit_at = :t",
                             ExpressionAttributeValues={":t": {"N": "2"}})
        assert meter.total_write_units() == 2 + 2 + 2  # the table; the index: old entry deleted, new one put
        meter.reset()
        with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
            dynamodb.update_item(TableName=TABLE, Key={"pk": {"S": "a"}}, UpdateExpression="SET pad = :p",
                                 ConditionExpression="last_hit_at = :old",
                                 ExpressionAttributeValues={":p": {"S": "y"}, ":old": {"N": "1"}})
        assert meter.total_write_units() == 2  # a refused write still bills the item it read
        meter.reset()
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "small"}})
        assert meter.total_write_units() == 1  # 6 bytes, not in the (sparse) index
        meter.reset()
        dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "a"}})
        assert meter.total_write_units() == 2 + 2  # the item, and its index entry
        assert meter.write_units == {TABLE: 4}
        assert meter.requests[("dynamodb", "DeleteItem")] == 1


def test_read_units_round_up_to_4_kb_per_item_or_per_query(table: None) -> None:
    dynamodb = boto3.client("dynamodb")
    big = {"pk": {"S": "big"}, "pad": {"S": "z" * 5000}}  # 2 + 3 + 3 + 5,000 = 5,008 bytes
    dynamodb.put_item(TableName=TABLE, Item=big)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "small"}})
    with metered() as meter:
        client = boto3.session.Session().client("dynamodb")
        client.get_item(TableName=TABLE, Key={"pk": {"S": "big"}}, ConsistentRead=True)
        assert meter.total_read_units() == 2
        meter.reset()
        client.get_item(TableName=TABLE, Key={"pk": {"S": "small"}})
        assert meter.total_read_units() == 0.5  # eventually consistent
        meter.reset()
        client.batch_get_item(RequestItems={TABLE: {"Keys": [{"pk": {"S": "big"}}, {"pk": {"S": "nobody"}}],
                                                    "ConsistentRead": True}})
        assert meter.total_read_units() == 2 + 1  # each item apart; a missing one still a unit
        meter.reset()
        client.query(TableName=TABLE, KeyConditionExpression="pk = :pk", ProjectionExpression="#p",
                     ExpressionAttributeNames={"#p": "pad"}, ExpressionAttributeValues={":pk": {"S": "big"}}, ConsistentRead=True)
        assert meter.total_read_units() == 2  # the whole item counts, whatever the projection returns (no pk)


def test_s3_requests_by_price_class_and_moto_time_left_out(aws: None) -> None:
    with metered() as meter:
        s3 = boto3.session.Session().client("s3")
        s3.create_bucket(Bucket="sendtrail-meter-bucket")
        s3.put_object(Bucket="sendtrail-meter-bucket", Key="k", Body=b"1")
        s3.get_object(Bucket="sendtrail-meter-bucket", Key="k")
        s3.list_objects_v2(Bucket="sendtrail-meter-bucket")
        s3.delete_object(Bucket="sendtrail-meter-bucket", Key="k")
    # CreateBucket, PutObject and ListObjectsV2 at the PUT price; GetObject at the GET price; DELETE is free
    assert meter.s3_requests() == {"put": 3, "get": 1}
    assert meter.excluded_cpu_s > 0
