"""sendtrail's Lambda code, by domain.

- hits/: the public tracking endpoints (/r, /o, /u, /m, /r/test). The hit
  path must cold-start fast: it imports neither pydantic nor the delivery code.
- deliveries/: creating deliveries, preparing their links, sending them.
- data/: every AWS call goes through here.
- settings.py: the one settings model (pydantic-settings, env-driven).
"""
