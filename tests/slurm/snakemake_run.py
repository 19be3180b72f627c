"""Run the workflow through ``snakemake --profile profiles/slurm`` and read what Snakemake said.

Snakemake runs as ``snakemake_steady_polling.py`` (Snakemake's own CLI with the SLURM
plugin's status checks kept at the configured interval, see there).

:class:`SnakemakeRun` starts Snakemake in its own process group with its output in a file,
so a test can act on SLURM while it runs (``scancel``) and kill the whole group when the test
ends (an assertion, or pytest-timeout when a wrong status command makes Snakemake wait
forever). :func:`parse_jobs` turns Snakemake's log into one :class:`JobRecord` per job.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the environment whose `cryo-pipeline` the SLURM jobs run
STEADY_POLLING = Path(__file__).resolve().parent / "snakemake_steady_polling.py"  # `snakemake`, steady checks

_BLOCK = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):\n((?:[ \t]+\S.*\n)+)", re.M)
_SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.")
_FINISHED = re.compile(r"Finished jobid: (\d+) \(Rule: (\w+)\)")


@dataclass
class JobRecord:
    """One job of one Snakemake run, as its log tells it."""

    jobid: str
    rule: str
    wildcards: str
    outputs: tuple[str, ...]
    local: bool
    slurm_id: str | None = None
    slurm_log: str | None = None
    finished: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """``(rule, wildcards)``: the same job across runs (Snakemake's job ids are per run)."""
        return self.rule, self.wildcards


def parse_jobs(output: str) -> dict[str, JobRecord]:
    """Every job Snakemake started in ``output`` (its log), by Snakemake job id."""
    jobs: dict[str, JobRecord] = {}
    for match in _BLOCK.finditer(output):
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", match.group(3), flags=re.M))
        if "jobid" not in fields:
            continue
        outputs = tuple(p.strip() for p in fields.get("output", "").split(",") if p.strip())
        jobs[fields["jobid"]] = JobRecord(jobid=fields["jobid"], rule=match.group(2),
                                          wildcards=fields.get("wildcards", "").strip(), outputs=outputs,
                                          local=bool(match.group(1)))
    for jobid, slurm_id, log in _SUBMITTED.findall(output):
        jobs[jobid].slurm_id, jobs[jobid].slurm_log = slurm_id, log
    for jobid, rule in _FINISHED.findall(output):
        assert jobs[jobid].rule == rule, (jobid, rule, jobs[jobid])
        jobs[jobid].finished = True
    return jobs


@dataclass
class SnakemakeRun:
    """``snakemake --snakefile <repo>/Snakefile <args>`` in ``workdir``, output (stdout+stderr) in ``log_path``."""

    workdir: Path
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0

    def start(self) -> SnakemakeRun:
        env = {**os.environ, **self.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        command = [sys.executable, str(STEADY_POLLING), "--snakefile", str(REPO / "Snakefile"), *self.args]
        self.started = time.monotonic()
        with open(self.log_path, "w") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            self.process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """The exit status. With ``timeout`` (s from the start), the whole process group is SIGKILLed and -9
        returned after it; without, it waits as long as Snakemake runs (pytest-timeout ends a hang)."""
        try:
            remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - self.started))
            code = self.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.kill(f"killed by the test after {timeout:.0f} s")
            code = -9
        self.seconds = time.monotonic() - self.started
        return code

    def kill(self, why: str) -> None:
        """SIGKILL Snakemake's whole process group (it and the commands it runs), noted in its log."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with open(self.log_path, "a") as log:
            log.write(f"\n[{why}]\n")

    def __enter__(self) -> SnakemakeRun:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        """Leaving the block (an assertion, pytest-timeout) never leaves Snakemake running."""
        if self.running():
            self.kill("killed by the test: the test ended while Snakemake ran")


def run_snakemake(workdir: Path, *args: str, log_name: str, env: dict[str, str] | None = None
                  ) -> tuple[int, str, float]:
    """Run to the end: ``(exit status, output, seconds)`` (no clock: pytest-timeout ends a hang)."""
    with SnakemakeRun(workdir, list(args), workdir / log_name, env or {}) as run:
        code = run.wait()
    return code, run.output, run.seconds
