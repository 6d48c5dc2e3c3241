"""Run every benchmark: `python -m benchmarks` (what `make bench` does)."""

from benchmarks import tracking_core, tracking_workflow

if __name__ == "__main__":
    tracking_core.main()
    tracking_workflow.main()
