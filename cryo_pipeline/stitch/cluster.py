"""Where the stitch's tasks run: threads of this process, a running scheduler, or SLURM worker jobs.

:func:`start_cluster` picks one of three set-ups (the ``stitch:`` config section chooses):

* ``cluster: local`` (default): it yields ``None`` and the stitch runs its region tasks on a
  pool of the rule's ``threads`` threads in the calling process — no cluster to start (5–11 s
  for a ``LocalCluster``), no inter-process transfers; numpy releases the GIL in the copies
  and lerps that make up the work;
* ``scheduler_address``: a ``distributed.Client`` of a scheduler that already runs;
* ``cluster: slurm``: :class:`dask_jobqueue.SLURMCluster` submits the Dask workers as SLURM
  jobs of their own (``stitch.slurm_*``) and the scheduler runs in the calling process.

Worker processes run with their BLAS/OpenMP pools at one thread (distributed's nanny sets
``OMP_NUM_THREADS=1`` etc.; each stitch task also pins them with threadpoolctl).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SlurmWorkers", "pin_process_threads", "start_cluster"]

CLUSTERS = ("local", "slurm")
_WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")
# no dashboard, and the scheduler's HTTP routes on a free port: the default 8787 may be taken
# (another cluster, a user's dashboard), which Dask only warns about
_NO_DASHBOARD = {"dashboard": False, "dashboard_address": ":0"}


@dataclass(frozen=True)
class SlurmWorkers:
    """The Dask worker jobs of ``cluster: slurm`` (the config's ``stitch.slurm_*`` keys, without the prefix).

    Attributes
    ----------
    workers : int
        SLURM jobs to submit; each runs ``cores_per_worker`` single-threaded Dask worker
        processes (numpy blending holds the GIL).
    cores_per_worker : int
        CPUs of each job (``--cpus-per-task``).
    memory_per_worker_mb : int
        Memory of each job: ``--mem=<N>M``, shared by its processes (Dask's limit is N·10⁶ bytes).
    walltime : str
        ``HH:MM:SS`` or ``D-HH:MM:SS`` (``-t``).
    partition : str or None
        ``-p``; None = the cluster's default partition.
    """

    workers: int = 2
    cores_per_worker: int = 1
    memory_per_worker_mb: int = 4000
    walltime: str = "01:00:00"
    partition: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> SlurmWorkers:
        """From ``{"workers": 2, ...}`` or the config's prefixed keys ``{"slurm_workers": 2, ...}``.

        A None value means the default; any other key is an error naming the known ones.
        """
        names = tuple(cls.__dataclass_fields__)
        values: dict[str, Any] = {}
        for key, value in dict(options or {}).items():
            name = key.removeprefix("slurm_")
            if name not in names:
                raise ValueError(f"unknown SLURM option {key!r} for the Dask stitch; known: {', '.join(names)} "
                                 f"(or with the prefix slurm_)")
            if name in values:
                raise ValueError(f"SLURM option {name!r} given twice (with and without the prefix slurm_)")
            values[name] = value
        workers = cls(**{k: v for k, v in values.items() if v is not None})
        for name in ("workers", "cores_per_worker", "memory_per_worker_mb"):
            value = getattr(workers, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"stitch.slurm_{name} must be an integer >= 1, got {value!r}")
        if not isinstance(workers.walltime, str) or not _WALLTIME.match(workers.walltime):
            raise ValueError(f"stitch.slurm_walltime must be HH:MM:SS or D-HH:MM:SS, got {workers.walltime!r}")
        return workers

    @property
    def processes(self) -> int:
        """Dask worker processes expected once every job runs."""
        return self.workers * self.cores_per_worker


@contextmanager
def start_cluster(*, threads: int, memory_limit_mb: int | None = None, scheduler_address: str | None = None,
                  cluster: str = "local", slurm: Mapping[str, Any] | None = None,
                  log_directory: str | Path | None = None, worker_timeout_s: float = 600.0) -> Iterator[Any]:
    """A Dask ``distributed.Client`` for the stitch (closed, with its worker jobs, on exit), or None for local threads.

    Parameters
    ----------
    threads : int
        Threads of the local run (the rule's ``threads``); checked here, used by the stitch.
        Ignored by the other set-ups.
    memory_limit_mb : int, optional
        Memory of the whole job in MB (10⁶ bytes); checked here (the stitch sizes its tasks
        from it).
    scheduler_address : str, optional
        Connect to this running scheduler (e.g. ``tcp://host:8786``) instead of starting a
        cluster; only with ``cluster="local"``.
    cluster : {"local", "slurm"}
        ``slurm``: submit the workers as SLURM jobs (needs ``dask-jobqueue`` and ``sbatch``).
    slurm : mapping, optional
        ``workers``, ``cores_per_worker``, ``memory_per_worker_mb``, ``walltime``,
        ``partition`` (:class:`SlurmWorkers`), each also accepted with the config's prefix
        ``slurm_``; missing or None = the default.
    log_directory : str or Path, optional
        SLURM: where the worker jobs write ``cryo-dask-worker-<jobid>.out/.err``; None = a
        temporary folder, removed on exit.
    worker_timeout_s : float
        SLURM: give up if not every worker process has connected after this long (jobs may
        wait in the queue), naming the partition and the jobs' SLURM states.

    Yields
    ------
    distributed.Client or None
        None for ``cluster="local"`` without a scheduler address.

    Raises
    ------
    ValueError
        Bad sizes, an unknown ``cluster``, or a SLURM job SLURM refuses (``sbatch --test-only``:
        unknown partition, more CPUs or memory than a node has).
    ImportError
        ``cluster="slurm"`` without dask-jobqueue.
    RuntimeError
        ``cluster="slurm"``: the workers did not all start within ``worker_timeout_s``.
    """
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown Dask cluster {cluster!r} for the stitch; use one of {', '.join(CLUSTERS)}")
    if cluster == "slurm" and scheduler_address:
        raise ValueError("give either cluster='slurm' or a scheduler_address, not both")
    if cluster == "local" and scheduler_address is None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1 for the local stitch, got {threads}")
    if memory_limit_mb is not None and memory_limit_mb <= 0:
        raise ValueError(f"memory_limit_mb must be > 0, got {memory_limit_mb}")
    chatter = logging.getLogger("distributed")  # the scheduler logs every worker event at INFO
    level = chatter.level
    chatter.setLevel(max(logging.WARNING, chatter.getEffectiveLevel()))
    try:
        if cluster == "slurm":
            with _slurm_client(SlurmWorkers.from_mapping(slurm), log_directory=log_directory,
                               timeout_s=worker_timeout_s) as client:
                yield client
            return
        if not scheduler_address:
            yield None  # the stitch's own thread pool: nothing to start
            return
        from distributed import Client

        with Client(scheduler_address) as client:
            yield client
    finally:
        chatter.setLevel(level)


@contextmanager
def _slurm_client(options: SlurmWorkers, *, log_directory: str | Path | None, timeout_s: float) -> Iterator[Any]:
    """A SLURMCluster of ``options.workers`` jobs, every worker connected, and its client."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise ImportError("stitch.cluster: slurm needs dask-jobqueue: pip install dask-jobqueue") from err
    from distributed import Client

    with tempfile.TemporaryDirectory(prefix="cryo-dask-slurm-") as scratch:
        logs = Path(log_directory) if log_directory is not None else Path(scratch)
        logs.mkdir(parents=True, exist_ok=True)
        kwargs = dict(cores=options.cores_per_worker, processes=options.cores_per_worker,
                      memory=f"{options.memory_per_worker_mb}MB", job_mem=f"{options.memory_per_worker_mb}M",
                      walltime=options.walltime, job_name="cryo-dask-worker", log_directory=str(logs),
                      python=sys.executable, scheduler_options=_NO_DASHBOARD)
        if options.partition:
            kwargs["queue"] = options.partition
        with SLURMCluster(**kwargs) as cluster:
            _check_job_script(cluster.job_script(), options, Path(scratch))
            cluster.scale(jobs=options.workers)
            with Client(cluster) as client:
                try:
                    client.wait_for_workers(options.processes, timeout=timeout_s)
                except TimeoutError as err:
                    raise RuntimeError(_no_workers_message(cluster, client, options, logs, timeout_s)) from err
                yield client


def _check_job_script(script: str, options: SlurmWorkers, scratch: Path) -> None:
    """Let SLURM validate one worker job (``sbatch --test-only``) before submitting any."""
    path = scratch / "worker_job.sh"
    path.write_text(script)
    try:
        result = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError as err:
        raise RuntimeError("stitch.cluster: slurm needs sbatch on PATH (run on a SLURM submit host)") from err
    if result.returncode != 0:
        where = f"partition {options.partition!r}" if options.partition else "the default partition"
        raise ValueError(f"SLURM refuses the Dask worker job ({where}, {options.cores_per_worker} CPU(s), "
                         f"{options.memory_per_worker_mb} MB, {options.walltime}): "
                         f"{' '.join(result.stderr.split())}")


def _no_workers_message(cluster: Any, client: Any, options: SlurmWorkers, logs: Path, timeout_s: float) -> str:
    arrived = len(client.scheduler_info().get("workers", {}))
    job_ids = [job.job_id for job in cluster.workers.values() if getattr(job, "job_id", None)]
    states = "no job was submitted"
    if job_ids:
        try:
            result = subprocess.run(["squeue", "-h", "--states=all", "-j", ",".join(job_ids), "-o", "%i %T %r"],
                                    capture_output=True, text=True, timeout=30)
            states = "; ".join(result.stdout.split("\n")).strip("; ") or result.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            states = f"squeue failed: {err}"
    where = f"partition {options.partition!r}" if options.partition else "the default partition"
    return (f"only {arrived} of {options.processes} Dask worker process(es) connected within {timeout_s:g} s "
            f"({options.workers} SLURM job(s) in {where}); jobs: {states}; worker logs in {logs}")


def pin_process_threads() -> None:
    """Limit this worker process's BLAS/OpenMP pools to one thread (once)."""
    if getattr(pin_process_threads, "done", False):
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover - a dependency; distributed's nanny also sets OMP_NUM_THREADS=1
        pass
    pin_process_threads.done = True  # type: ignore[attr-defined]

