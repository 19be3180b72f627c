"""Helpers of the reader fuzz tests (tests/io/test_fuzz_*.py): settings, a per-case alarm, case counts."""

from __future__ import annotations

import contextlib
import signal
import time
from collections import Counter

from hypothesis import HealthCheck, settings

# Derandomised, no database: the same cases on every run and every machine.
FUZZ = {"derandomize": True, "database": None, "deadline": None, "print_blob": False,
        "suppress_health_check": [HealthCheck.too_slow]}
CASE_SECONDS = 10  # per-case deadline; a case takes milliseconds


class CaseTimeout(BaseException):
    """Raised by the per-case alarm; a BaseException so no ``except Exception`` swallows it."""


@contextlib.contextmanager
def deadline(seconds: int = CASE_SECONDS):
    """Interrupt the body after ``seconds`` (a hang fails the test instead of stalling it)."""

    def _raise(signum, frame):
        raise CaseTimeout(f"case did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    outer_s, _ = signal.setitimer(signal.ITIMER_REAL, seconds)  # pytest-timeout's alarm for the whole test
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_s:  # give pytest-timeout its alarm back, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer_s - (time.monotonic() - started), 0.001))


def run_examples(test, n_examples: int) -> None:
    """Run the Hypothesis ``test`` with ``n_examples`` derandomised examples."""
    settings(max_examples=n_examples, **FUZZ)(test)()


def record_cases(request, name: str, counts: Counter, n_cases: int, minimum: int) -> None:
    """Keep the case counts (``user_properties``; printed, so ``pytest -rP`` shows them) and check them."""
    request.node.user_properties.append((f"{name}_cases", n_cases))
    request.node.user_properties.extend((f"{name}_{k}", v) for k, v in sorted(counts.items()))
    print(f"fuzz {name}: {n_cases} cases; " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    # Hypothesis may end generation early on a loaded machine (it stops a phase that runs long);
    # the count is recorded either way, and at least three quarters must have run
    assert n_cases >= 0.75 * minimum, f"only {n_cases} cases were tried (at least {0.75 * minimum:g} expected)"
