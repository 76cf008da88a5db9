"""Benchmarks: what a check costs, how true its times are, and how it scales.

Run with ``python3 -m tests.bench`` from the repository root (see
docs/benchmarks.md).  Nothing here is collected by pytest: performance is measured and
reported, not asserted in the test run, since these machines are shared and noisy.
"""
