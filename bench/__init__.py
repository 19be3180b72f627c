"""Benchmarks for cryo_pipeline (not part of the installed package).

Run ``python -m bench list`` to see them, ``python -m bench <name> [--quick]`` to run
one. See ``bench/README.md``.
"""

from bench.harness import (
    BENCHMARKS,
    BenchResult,
    load_benchmarks,
    register,
    timeit,
    write_result,
)

__all__ = ["BENCHMARKS", "BenchResult", "load_benchmarks", "register", "timeit", "write_result"]
