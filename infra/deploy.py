"""`make deploy`: upload a package (`make package`) and create or update its stack.

The same two steps as `aws cloudformation package` and `aws cloudformation
deploy`, with boto3 (already a dependency; no AWS CLI to install):

1. package: every local artifact the template names (a function's CodeUri,
   a layer's ContentUri) is uploaded to the artifact bucket under its
   SHA-256, so an unchanged artifact is not uploaded or redeployed again,
   and the template is rewritten to point at S3; the template itself goes
   to S3 too (CloudFormation takes at most 51,200 bytes inline).
2. deploy: a change set (CREATE the first time, UPDATE after), shown, then
   executed, waiting for the stack to finish. A failed create or update is
   rolled back by CloudFormation to the last good state (see README, "Deploy
   to AWS", for rollback by hand).

Never run by the tests against AWS; `upload_artifacts` is tested on moto.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import WaiterError

ARTIFACT_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


def upload_artifacts(template_path: Path, bucket: str, prefix: str, s3: Any) -> dict[str, Any]:
    """The template with its local artifacts uploaded to s3://bucket/prefix/<sha256>.zip."""
    template = yaml.safe_load(template_path.read_text())
    for resource in template["Resources"].values():
        name = ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        uri = resource.get("Properties", {}).get(name) if name else None
        if not isinstance(uri, str) or uri.startswith("s3://"):
            continue
        artifact = (template_path.parent / uri).resolve()
        if not artifact.is_file():
            raise FileNotFoundError(f"{uri} (from {template_path}) does not exist; run `make package` first")
        body = artifact.read_bytes()
        key = f"{prefix}/{hashlib.sha256(body).hexdigest()}{artifact.suffix}"
        if not _exists(s3, bucket, key):
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        resource["Properties"][name] = f"s3://{bucket}/{key}"
    return template


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload_template(template: dict[str, Any], bucket: str, prefix: str, s3: Any, region: str) -> str:
    body = yaml.safe_dump(template, sort_keys=False, width=120).encode()
    key = f"{prefix}/templates/{hashlib.sha256(body).hexdigest()}.yaml"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def deploy(stack_name: str, template_url: str, parameters: dict[str, str], cloudformation: Any) -> str:
    """Create or update the stack through a change set; answers the stack's final status."""
    exists = _stack_exists(cloudformation, stack_name)
    change_set = f"sendtrail-{int(time.time())}"
    cloudformation.create_change_set(
        StackName=stack_name, ChangeSetName=change_set, TemplateURL=template_url,
        ChangeSetType="UPDATE" if exists else "CREATE", Capabilities=CAPABILITIES,
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Tags=[{"Key": "app", "Value": "sendtrail"}])
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=stack_name, ChangeSetName=change_set, WaiterConfig={"Delay": 5, "MaxAttempts": 120})
    except WaiterError:
        described = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set)
            print("no changes to deploy")
            return "UNCHANGED"
        raise RuntimeError(f"change set failed: {reason}") from None
    for change in cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set)["Changes"]:
        detail = change["ResourceChange"]
        print(f"  {detail['Action']:<8} {detail['LogicalResourceId']} ({detail['ResourceType']})"
              + (f" replacement={detail['Replacement']}" if detail.get("Replacement") else ""))
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=change_set)
    waiter = "stack_update_complete" if exists else "stack_create_complete"
    cloudformation.get_waiter(waiter).wait(StackName=stack_name, WaiterConfig={"Delay": 10, "MaxAttempts": 360})
    return cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]


def _stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=("dev", "prod"))
    parser.add_argument("--bucket", required=True, help="an S3 bucket you own for artifacts, in the stack's region")
    parser.add_argument("--region", required=True)
    parser.add_argument("--stack-name", help="default: sendtrail-<stage>")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a template parameter (repeatable), e.g. AlertEmail=ops@example.com")
    arguments = parser.parse_args(argv)
    import boto3

    session = boto3.session.Session(region_name=arguments.region)
    template_path = Path("out") / arguments.stage / "sam.yaml"
    if not template_path.exists():
        print(f"{template_path} is missing: run `make package STAGE={arguments.stage}` first", file=sys.stderr)
        return 1
    parameters = dict(item.split("=", 1) for item in arguments.parameter)
    stack_name = arguments.stack_name or f"sendtrail-{arguments.stage}"
    s3 = session.client("s3")
    template = upload_artifacts(template_path, arguments.bucket, stack_name, s3)
    url = upload_template(template, arguments.bucket, stack_name, s3, arguments.region)
    status = deploy(stack_name, url, {"Stage": arguments.stage, **parameters}, session.client("cloudformation"))
    print(f"{stack_name}: {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
