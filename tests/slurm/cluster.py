"""A real single-node SLURM cluster for the tests: start it, ask it about jobs, stop it.

:func:`start_slurm_cluster` runs ``start_slurm.sh`` (beside this file) under a hard
timeout; it raises :class:`SlurmUnavailable` with the script's reason when SLURM cannot
run here (not root, no apt-get, a daemon does not come up), which the fixture turns into
a skip. :meth:`SlurmCluster.stop` runs ``stop_slurm.sh``, which ends the daemons by the PID
files in the state directory. Every call into SLURM has a timeout: a hung ``squeue`` must
not hang the test session.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_SCRIPT = HERE / "start_slurm.sh"
STOP_SCRIPT = HERE / "stop_slurm.sh"
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                      "BOOT_FAIL", "DEADLINE", "PREEMPTED"})
_FIELD = re.compile(r"(\w+)=(\S*)")
# Limits on SLURM client calls and on the start/stop scripts: hang-catchers only, far above what a loaded
# machine needs (a start may apt-get install the packages first).
CLIENT_HANG_S, START_HANG_S, STOP_HANG_S = 300, 1200, 300


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as ``scontrol show job`` reports it (finished jobs stay for MinJobAge=300 s)."""

    job_id: str
    name: str
    comment: str
    state: str
    partition: str
    cpus: int
    mem_mb: int
    tres_per_job: str
    tres_per_node: str
    work_dir: str = ""
    submit_time: str = ""  # ISO 8601 as SLURM prints it (compares as text)
    start_time: str = ""
    end_time: str = ""

    @property
    def gpu_request(self) -> str:
        """The GPU part of the request (``gres:gpu:1`` for --gpus=1 or --gres=gpu:1), '' if none."""
        return ",".join(t for t in (self.tres_per_job, self.tres_per_node) if "gpu" in t)


def _megabytes(value: str) -> int:
    """``MinMemoryNode`` (``32000M``, ``2G``, ``0``) in MB as SLURM counts them (MiB)."""
    number, unit = re.fullmatch(r"(\d+)([KMGT]?)", value or "0").groups()
    return round(int(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "": 1}[unit])


def run_with_timeout(command: list[str], *, timeout: float, env: Mapping[str, str] | None = None,
                     cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on timeout SIGKILL the whole group.

    Returns the completed process; on timeout, one with ``returncode`` -9 whose stderr
    ends with a line naming the timeout (the output so far is kept).
    """
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=cwd, start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            err += f"\n[killed by the test: no exit within {timeout:.0f} s: {' '.join(command[:3])} ...]\n"
            return subprocess.CompletedProcess(command, -9, out, err)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@dataclass
class SlurmCluster:
    """A running test cluster (see ``start_slurm.sh``); one partition, one node ``localhost``."""

    state_dir: Path
    partition: str
    start_seconds: float

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM clients (``/etc/slurm/slurm.conf`` points here as well)."""
        return {**os.environ, "SLURM_CONF": str(self.state_dir / "slurm.conf")}

    def _client(self, *command: str, timeout: float = CLIENT_HANG_S) -> str:
        result = run_with_timeout(list(command), timeout=timeout, env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def jobs(self) -> dict[str, SlurmJob]:
        """Every job the controller still knows, by job id (running, pending and finished)."""
        out = self._client("scontrol", "show", "job", "--oneliner")
        jobs = {}
        for line in out.splitlines():
            fields = dict(_FIELD.findall(line))
            if "JobId" not in fields:
                continue
            jobs[fields["JobId"]] = SlurmJob(
                job_id=fields["JobId"], name=fields.get("JobName", ""), comment=fields.get("Comment", ""),
                state=fields.get("JobState", ""), partition=fields.get("Partition", ""),
                cpus=int(fields.get("NumCPUs", "0") or 0), mem_mb=_megabytes(fields.get("MinMemoryNode", "0")),
                tres_per_job=fields.get("TresPerJob", ""),
                tres_per_node=fields.get("TresPerNode", ""), work_dir=fields.get("WorkDir", ""),
                submit_time=fields.get("SubmitTime", ""), start_time=fields.get("StartTime", ""),
                end_time=fields.get("EndTime", ""))
        return jobs

    def wait_for_job(self, select: Callable[[SlurmJob], bool], *, states: Iterable[str] = ("RUNNING",),
                     poll: float = 0.1, while_true: Callable[[], bool] | None = None) -> SlurmJob:
        """The first job for which ``select(job)`` is true once it is in one of ``states``.

        Waits for that event in SLURM's own records, however long the machine takes (no
        clock: pytest-timeout ends a hang); raises TimeoutError as soon as ``while_true()``
        is false (e.g. the Snakemake run that should submit the job has ended).
        """
        wanted = set(states)
        while while_true is None or while_true():
            for job in self.jobs().values():
                if select(job) and job.state in wanted:
                    return job
            time.sleep(poll)
        raise TimeoutError(f"no job matching the test's selection reached {sorted(wanted)} before the submitter "
                           f"ended; jobs: {[(j.job_id, j.comment or j.name, j.state) for j in self.jobs().values()]}")

    def wait_until_finished(self, job_ids: Iterable[str], *, poll: float = 0.25) -> dict[str, str]:
        """The end state of each job, once every one of them has ended (no clock: pytest-timeout ends a hang)."""
        job_ids = list(job_ids)
        while True:
            jobs = self.jobs()
            if all(jobs[i].state in FINISHED for i in job_ids):
                return {i: jobs[i].state for i in job_ids}
            time.sleep(poll)

    def scancel(self, *job_ids: str) -> None:
        """Cancel jobs of this cluster."""
        if job_ids:
            self._client("scancel", *job_ids)

    def cancel_all(self) -> None:
        """Cancel whatever is still pending or running (e.g. after a killed Snakemake)."""
        active = [j.job_id for j in self.jobs().values() if j.state not in FINISHED]
        self.scancel(*active)

    def stop(self) -> subprocess.CompletedProcess:
        """Stop the daemons by their PID files and remove the state directory."""
        return run_with_timeout(["bash", str(STOP_SCRIPT), str(self.state_dir)], timeout=STOP_HANG_S)


def start_slurm_cluster(state_dir: Path, *, timeout: float = START_HANG_S, partition: str = "debug") -> SlurmCluster:
    """Start the cluster in ``state_dir`` (installing the Debian packages if missing).

    Raises
    ------
    SlurmUnavailable
        Not root, no apt-get, a port taken, or a step failed; the message is the reason
        the start script gave, with the daemons' log tails for a failure.
    """
    start = time.monotonic()
    result = run_with_timeout(["bash", str(START_SCRIPT), str(state_dir)], timeout=timeout,
                              env={**os.environ, "CRYO_SLURM_PARTITION": partition,
                                   "CRYO_SLURM_OWNER_PID": str(os.getpid())})
    seconds = time.monotonic() - start
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        reason = errors[-1].removeprefix("ERROR:").strip() if errors else f"exit status {result.returncode}"
        if result.returncode != 3:  # a real failure: keep what the daemons said, then clean up
            reason += f"\n{result.stdout[-1500:]}{result.stderr[-3000:]}"
            run_with_timeout(["bash", str(STOP_SCRIPT), str(state_dir)], timeout=STOP_HANG_S)
        raise SlurmUnavailable(f"test SLURM cluster did not start: {reason}")
    return SlurmCluster(state_dir=Path(state_dir), partition=partition, start_seconds=seconds)
