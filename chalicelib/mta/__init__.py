"""The MTA: SES as the sending engine, and the delivery monitoring built on it.

Campaign's model on SES: an affinity is a configuration set (and its
dedicated IP pool); sending a delivery is a job cut into chunks on an SQS
work queue (jobs.py, worker.py); every message has a delivery log whose
status SES events keep true (events.py, bounces.py, statuses.py); bad
addresses are quarantined so later deliveries skip them (quarantine.py);
monitoring.py says where a delivery stands and, when it does not move, why.
The pure rules (statuses, states, bounce mapping, quarantine, pacing) know
nothing of AWS; every AWS call is in chalicelib/data/.
"""
