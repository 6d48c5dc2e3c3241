"""The public tracking endpoints: redirect, open pixel, opt-out, mirror page.

Everything here is on the hit path, which must cold-start fast and answer at
once: standard library, boto3 and the small modules of this package only.
"""
