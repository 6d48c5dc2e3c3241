"""The local runtime: what sendtrail needs locally that moto does not do.

moto is sendtrail's embedded AWS. It stores resources and answers their APIs,
but it does not run what AWS runs *between* services: it does not provision
every resource type from CloudFormation, invoke Lambda functions from
triggers, pump Kinesis into Firehose, publish SES configuration-set events or
evaluate alarms. Each of those emulations lives in this package, and only
here. Lambda code (app.py, chalicelib/) never imports it.
"""
