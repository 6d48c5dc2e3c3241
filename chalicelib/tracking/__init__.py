"""The tracking workflow: redirection logs in, tracking tables and indicators out.

core.py        the pure function (log bytes -> verified hits -> aggregates); no AWS, no clock
workflow.py    one run: lease, checkpoint, listing, write-ahead run record, guarded writes
indicators.py  Campaign's indicator formulas over the stored counters
useragents.py  user-agent classification (OS, device, browser, mail client)
"""
