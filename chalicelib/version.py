"""sendtrail's version, reported by /r/test and the status check."""

VERSION = "0.1.0"
