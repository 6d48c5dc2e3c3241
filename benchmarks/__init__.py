"""Benchmarks: speed and write-volume figures (never timed assertions in tests). `make bench` runs them."""
