"""Stage ``stitch_tiles``: blend the tile stores of parallel jobs with Dask → Zarr, MRC and a record.

Used by rule ``stitch_cryogen`` (after N ``predict_cryogen_tiles`` jobs) and by rule
``stitch_slabs`` (after the CN ``fit_slab`` jobs): the stores come from :mod:`cryo_pipeline.io.tile_store`,
the blending from :func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores` on a local
Dask cluster of ``threads`` single-threaded worker processes (or a running scheduler).
The outputs are the same as a single ``predict_cryogen`` job's (volume Zarr, MRC,
``.json`` record), so ``evaluate`` cannot tell the two apart. When the stores carry
``slab_boundaries_y`` (CN slabs), the record also gets the ``seam_ratio``
(:func:`cryo_pipeline.ops.slabs.seam_ratio`, computed on the cluster).

Runtime in the record: the groups run in parallel, so
``runtime_s = train_s + max over groups of predict_s + stitch_s``, where ``train_s``
is the training time the groups read from the model's record, ``predict_s`` each
group's prediction time (a record without ``predict_s``, e.g. a CN slab, counts with its
``runtime_s`` and ``train_s = 0``) and ``stitch_s`` this stage's cluster start-up and
blending (the MRC copy is not counted, as in ``predict_cryogen``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from cryo_pipeline.config.execution import ExecutionConfig
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import StitchConfig
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta, stage_outputs, write_stage_meta
from cryo_pipeline.io.tile_store import open_tile_store
from cryo_pipeline.io.volume_outputs import copy_zarr_to_mrc_and_ome_zarr, ome_zarr_path_for
from cryo_pipeline.io.zarr_store import open_volume_zarr
from cryo_pipeline.ops.slabs import seam_ratio
from cryo_pipeline.stitch.cluster import start_cluster
from cryo_pipeline.stitch.dask_blend import read_tile_layout, stitch_tile_stores
from cryo_pipeline.stitch.seams import row_step_means_zarr

log = logging.getLogger(__name__)


def _records(meta_paths: Sequence[Path]) -> list[dict]:
    records = []
    for path in meta_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"tile group record {path} does not exist (written beside each tile store)")
        records.append(read_stage_meta(Path(path)))
    return records


def _timing(records: list[dict]) -> tuple[float, float]:
    """``(train_s, parallel_s)``: the training time and the slowest group's own time."""
    train_s = max((float(r.get("train_s", 0.0)) for r in records), default=0.0)
    parallel_s = max((float(r["predict_s"]) if "predict_s" in r else float(r.get("runtime_s", 0.0))
                      for r in records), default=0.0)
    return train_s, parallel_s


@reads("stitch_slabs")
def run(
    *,
    tile_stores: Sequence[Path],
    out: Path,
    out_zarr: Path,
    threads: int,
    scheduler_address: str | None = None,
    meta_paths: Sequence[Path] = (),
    memory_limit_mb: int | None = None,
    cfg: StitchConfig | None = None,
    execution: ExecutionConfig | None = None,
) -> None:
    """Stitch ``tile_stores`` into ``out_zarr`` and ``out`` (MRC), with the record ``out`` → ``.json``.

    Parameters
    ----------
    tile_stores : sequence of Path
        Stores that together hold every tile of the grid exactly once.
    out, out_zarr : Path
        MRC and Zarr volume to write `(d, h, w)` float32, voxel size from the stores.
    threads : int
        Workers of the local Dask cluster (the rule's threads).
    scheduler_address : str, optional
        Use a running Dask scheduler instead of a local cluster.
    meta_paths : sequence of Path
        The groups' records (for the runtime, device, dataset, method and config).
    memory_limit_mb : int, optional
        Memory of the job in MB, split between the local workers (None = Dask's "auto").
    cfg : StitchConfig, optional
        Output chunk size; default: 64³ chunks.
    execution : ExecutionConfig, optional
        The Dask cluster (``stitch_cluster``, ``stitch_slurm_*``; a ``stitch_scheduler_address``
        there wins over the argument's); default: a local cluster.
    """
    cfg = cfg or StitchConfig()
    execution = execution or ExecutionConfig()
    records = _records(meta_paths)
    read_tile_layout(tile_stores)  # fail on missing / duplicated tiles before starting a cluster
    boundaries = open_tile_store(tile_stores[0])[1].get("slab_boundaries_y")
    first = records[0] if records else {}
    method = first.get("method", "stitched")
    start = time.perf_counter()
    with stage_outputs(out_zarr, out, ome_zarr_path_for(out), meta_path_for(out)) as (
            tmp_zarr, tmp_mrc, tmp_ome, tmp_meta):
        with start_cluster(**_cluster_options(execution, threads, memory_limit_mb, scheduler_address)) as client:
            stitch_tile_stores(tile_stores, tmp_zarr, client=client, chunks=(cfg.chunk_px,) * 3)
            seams = {}
            if boundaries:
                seams = {"seam_ratio": seam_ratio(row_step_means_zarr(tmp_zarr, client=client), boundaries),
                         "slab_boundaries_y": list(boundaries)}
                log.info("seam ratio across %d slab boundaries: %.3f", len(boundaries), seams["seam_ratio"])
        stitch_s = time.perf_counter() - start
        volume = open_volume_zarr(tmp_zarr)
        voxel_size = float(volume.attrs["voxel_size_angstrom"])
        copy_zarr_to_mrc_and_ome_zarr(volume, tmp_mrc, tmp_ome, voxel_size_angstrom=voxel_size,
                                      step_z=int(volume.chunks[0]), labels=[f"cryo_pipeline {method} prediction, stitched"],
                                      attributes={"stage": "stitch_tiles", "method": method})
        train_s, parallel_s = _timing(records)
        devices = [str(r.get("device", "cpu")) for r in records]
        device = next((d for d in devices if d.startswith("cuda")), devices[0] if devices else "cpu")
        dataset = first.get("dataset") or None  # the sheet columns the groups' stage read
        log.info("stitched %d tile stores of %s: %s in %.1f s (slowest group %.1f s, training %.1f s)",
                 len(tile_stores), dataset.get("dataset", "?") if dataset else "?", tuple(volume.shape), stitch_s,
                 parallel_s, train_s)
        write_stage_meta(tmp_meta, stage="stitch_tiles", config=None, dataset=dataset,
                         runtime_s=train_s + parallel_s + stitch_s, device=device,
                         extra={"method": method, "config": first.get("config", {}), "train_s": train_s,
                                "predict_s": parallel_s, "stitch_s": stitch_s, "n_groups": len(tile_stores),
                                "predict_s_per_group": [r.get("predict_s", r.get("runtime_s")) for r in records],
                                "tile_stores": [str(p) for p in tile_stores], "model": first.get("model"),
                                "stitch": cfg.model_dump(mode="json"),
                                "execution": execution.model_dump(mode="json"), **seams})


def _cluster_options(execution: ExecutionConfig, threads: int, memory_limit_mb: int | None,
                     scheduler_address: str | None) -> dict:
    """Keyword arguments of :func:`~cryo_pipeline.stitch.cluster.start_cluster` for these run-time settings."""
    options = {"threads": threads, "memory_limit_mb": memory_limit_mb,
               "scheduler_address": execution.stitch_scheduler_address or scheduler_address}
    if execution.stitch_cluster == "slurm" and not options["scheduler_address"]:
        options["cluster"] = "slurm"
        options["slurm"] = {"workers": execution.stitch_slurm_workers,
                            "cores_per_worker": execution.stitch_slurm_cores_per_worker,
                            "memory_per_worker_mb": execution.stitch_slurm_memory_per_worker_mb,
                            "walltime": execution.stitch_slurm_walltime,
                            "partition": execution.stitch_slurm_partition}
    return options
