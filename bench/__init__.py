"""sendtrail's benchmarks (`make bench`): figures to read, never assertions."""
