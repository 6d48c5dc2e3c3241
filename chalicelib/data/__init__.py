"""The data layer: every AWS call sendtrail makes goes through this package.

Modules here speak boto3 and return plain Python values; domain code above
them never builds an AWS request itself. The hit path uses a few of these
modules too, so they import nothing heavier than boto3.
"""
