"""Benchmarks: ours vs the bare tool, side by side in one run (not timed assertions)."""
