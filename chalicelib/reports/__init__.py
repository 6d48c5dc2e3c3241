"""Campaign's delivery reports as a service: ids and parameters in, pydantic models out.

One module per report (or per theme); the models are in models.py, the
stores they read in chalicelib/data/. Every report reads a bounded number
of items by key (GetItem) or Query whatever the delivery's size, never a
Scan: the counters it needs are kept, exactly once, by the code that sees
each event (the tracking workflow, the send worker, the SES events
consumer). The HTTP routes and the pages call these functions; they only
parse and shape.
"""
