"""``snakemake`` with the SLURM plugin's status checks at a steady interval (tests only).

snakemake-executor-plugin-slurm 2.x waits 10 s longer after every status check in which no
job finished (hard-coded, up to 180 s), whatever ``--seconds-between-status-checks`` says.
For a workflow of 5-20 s jobs that adds 10-25 s to every stage: on the 2-core CI runner it
doubled the SLURM workflow test. This entry point resets the interval after each check to
``--slurm-init-seconds-before-status-checks`` and otherwise is ``snakemake`` unchanged (same
CLI, profile, plugin, sbatch calls and status queries). Where the plugin's internals differ
from 2.x it runs unpatched, and says so on stderr.

Usage: ``python tests/slurm/snakemake_steady_polling.py <snakemake arguments>``
"""

from __future__ import annotations

import inspect
import sys


def steady_status_checks() -> bool:
    """Patch the plugin's Executor; False (and unpatched) if it is not the expected 2.x shape."""
    try:
        from snakemake_executor_plugin_slurm import Executor
    except ImportError:
        return False
    check = getattr(Executor, "check_active_jobs", None)
    if check is None or not inspect.isasyncgenfunction(check) or "+ 10" not in inspect.getsource(check):
        return False

    async def check_active_jobs(self, active_jobs):
        async for job in check(self, active_jobs):
            yield job
        self.next_seconds_between_status_checks = self.workflow.executor_settings.init_seconds_before_status_checks

    Executor.check_active_jobs = check_active_jobs
    return True


if __name__ == "__main__":
    from snakemake.cli import main

    if not steady_status_checks():
        print("snakemake_steady_polling: SLURM plugin not patched (not the 2.x back-off); polling as shipped",
              file=sys.stderr)
    sys.argv[0] = "snakemake"
    sys.exit(main())
