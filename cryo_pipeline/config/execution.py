"""The ``execution:`` section: where and how fast a run computes, never what it computes.

These settings never enter a rule's ``params``, so changing them reruns no job: the
workflow hands them to the commands that need them as ``--execution-json``
(``workflow/rules/common.smk``: ``EXECUTION_JSON``). Threads, GPUs, memory and walltime
of each job stay in ``profiles/``.

Keys of older versions that lived in a science section fail with a message naming
their new place (:data:`MOVED_KEYS`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cryo_pipeline.config.stages import StageConfig

MOVED_KEYS = {
    ("train", "device"): "execution.device",
    ("predict", "device"): "execution.device",
    ("cn", "device"): "execution.device",
    ("predict", "n_jobs"): "execution.predict_n_jobs",
    ("stitch", "cluster"): "execution.stitch_cluster",
    ("stitch", "scheduler_address"): "execution.stitch_scheduler_address",
    ("stitch", "slurm_workers"): "execution.stitch_slurm_workers",
    ("stitch", "slurm_cores_per_worker"): "execution.stitch_slurm_cores_per_worker",
    ("stitch", "slurm_memory_per_worker_mb"): "execution.stitch_slurm_memory_per_worker_mb",
    ("stitch", "slurm_walltime"): "execution.stitch_slurm_walltime",
    ("stitch", "slurm_partition"): "execution.stitch_slurm_partition",
}
"""``(section, key)`` of an older config → where the value lives now."""


class ExecutionConfig(StageConfig):
    """``execution``: devices, job counts and the Dask cluster (run-time settings, not science)."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Device of train_cryogen, predict_cryogen and the CN fits; auto = CUDA when available."
    )
    predict_n_jobs: int = Field(
        1,
        ge=1,
        le=4096,
        description=(
            "1 = one predict_cryogen job for the whole tomogram; N > 1 = N predict_cryogen_tiles jobs, each "
            "predicting a contiguous group of tiles, blended by one stitch_cryogen job (Dask). The split mode "
            "needs every tomogram axis >= predict.tile_px. Changing it changes which jobs predict, so those run."
        ),
    )
    stitch_cluster: Literal["local", "slurm"] = Field(
        "local",
        description="Dask cluster of stitch_slabs. local: a distributed.LocalCluster of the rule's threads; "
        "slurm: a dask_jobqueue.SLURMCluster (workers are SLURM jobs).",
    )
    stitch_scheduler_address: str | None = Field(
        None, description="Use this running Dask scheduler (e.g. tcp://host:8786) instead of starting a cluster."
    )
    stitch_slurm_workers: int = Field(2, ge=1, le=4096, description="stitch_cluster: slurm — number of worker jobs.")
    stitch_slurm_cores_per_worker: int = Field(
        1, ge=1, le=1024, description="stitch_cluster: slurm — cores per worker job."
    )
    stitch_slurm_memory_per_worker_mb: int = Field(
        2000, ge=100, description="stitch_cluster: slurm — memory per worker job (MB)."
    )
    stitch_slurm_walltime: str = Field(
        "01:00:00", pattern=r"^\d{1,3}:\d{2}:\d{2}$",
        description="stitch_cluster: slurm — walltime per worker (HH:MM:SS).",
    )
    stitch_slurm_partition: str | None = Field(
        None, description="stitch_cluster: slurm — partition; empty = the site default."
    )


def moved_key_errors(data: object) -> list[str]:
    """One message per key of ``data`` (a whole config mapping) that moved: ``train.device moved to ...``."""
    if not isinstance(data, dict):
        return []
    messages = []
    for (section, key), target in MOVED_KEYS.items():
        values = data.get(section)
        if isinstance(values, dict) and key in values:
            messages.append(f"{section}.{key} moved to {target} (run-time settings live in the execution: section; "
                            f"write `execution: {{{target.split('.', 1)[1]}: {values[key]!r}}}`)")
    return messages


def moved_section_key_errors(section: str, data: object) -> list[str]:
    """:func:`moved_key_errors` for one section's mapping (what a command gets as ``--config-json``)."""
    return moved_key_errors({section: data}) if isinstance(data, dict) else []
