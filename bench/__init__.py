"""Benchmarks: `python -m bench.run [name ...]` (see bench/run.py)."""
