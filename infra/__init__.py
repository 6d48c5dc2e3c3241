"""How sendtrail runs: the CloudFormation template and the dev-only tooling.

Nothing under infra/ is deployed to Lambda and Lambda code (app.py,
chalicelib/) never imports it: it holds the local runtime that emulates what
moto lacks, the provisioner that turns infra/template.yaml into resources on
moto, and the `sendtrail` operator CLI.
"""
