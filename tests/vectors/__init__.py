"""The tracking core's shared test vectors (docs/spec/tracking-core.md): inputs and the outputs the contract gives.

parse_log.json and aggregate.json are read by tests/unit/test_vectors.py
(the Python reference and the native backend) and by the crate's
src/vectors.rs (cargo test). `python -m tests.vectors` writes them from the
reference; review the diff before committing a change.
"""
