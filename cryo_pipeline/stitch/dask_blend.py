"""The shared stitcher: blend the tile stores of parallel jobs into one Zarr volume (and MRC).

Parallel jobs (groups of CryoGEN inference tiles, CN slabs) each write their unblended tiles
to their own tile store; :func:`read_tile_layout` (:mod:`cryo_pipeline.stitch.layout`) checks
that together they hold the grid exactly once. :func:`stitch_tile_stores` then runs one
*region task* per output box (:mod:`cryo_pipeline.stitch.regions`: a chunk layer in z, a run of
whole chunks in x, swept along y; separable blending that copies single-cover voxels and lerps
only overlaps; every stored tile voxel read once, straight from the chunk files). Each task
writes whole chunks of the output Zarr (no locks, one writer per chunk) and its boxes of the
output MRC in place, and returns the sums the MRC header and the seam ratio need, so nothing
reads the volume again after the stitch.

Where the tasks run: a ``distributed.Client`` (a running scheduler, or SLURM worker jobs, see
:func:`cryo_pipeline.stitch.cluster.start_cluster`; tasks pin their process's BLAS/OpenMP
pools to one thread), or — for local runs — a pool of ``threads`` threads in this process
(numpy releases the GIL in the copies and lerps; no cluster start-up), with the pools limited
to one thread for the run.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.mrc_regions import create_mrc_regions, finish_mrc_regions
from cryo_pipeline.io.zarr_store import BY_DTYPE, create_volume_zarr
from cryo_pipeline.ops.blending import as_zyx
from cryo_pipeline.stitch.layout import TileLayout, read_tile_layout
from cryo_pipeline.stitch.regions import TASK_MEMORY_MIB, RegionOutputs, RegionResult, plan_regions, stitch_region

log = logging.getLogger(__name__)

__all__ = ["StitchSummary", "TileLayout", "read_tile_layout", "stitch_tile_stores"]


@dataclass(frozen=True)
class StitchSummary:
    """What the region tasks returned, combined in task order.

    Attributes
    ----------
    shape : (d, h, w)
    n_tasks : int
    seconds : float
        Wall time of the tasks.
    minimum, maximum, total, total_sq : float
        Over every voxel (float64 sums of per-plane float32 sums).
    count : int
        Voxels summed (= the volume size).
    row_step_means : `(h − 1,)` float64 or None
        ``mean |v[:, y+1, :] − v[:, y, :]|`` per row pair (with ``seam_steps=True``).
    block_results : list
        Per task (in task order), the list of the block hook's return values in band order.
    """

    shape: tuple[int, int, int]
    n_tasks: int
    seconds: float
    minimum: float
    maximum: float
    total: float
    total_sq: float
    count: int
    row_step_means: np.ndarray | None
    block_results: list[list[Any]]

    @property
    def mean(self) -> float:
        """Mean voxel value."""
        return self.total / self.count

    @property
    def rms(self) -> float:
        """Root-mean-square deviation from the mean (the MRC header's ``rms``)."""
        return float(np.sqrt(max(0.0, self.total_sq / self.count - self.mean**2)))


def _run_tasks(fn: Callable[..., RegionResult], jobs: list[tuple], *, client: Any | None, threads: int) -> list:
    """Run ``fn(*job)`` for every job on ``client`` or a local thread pool; results in job order."""
    results: list[Any] = [None] * len(jobs)
    step = max(1, len(jobs) // 10)
    done = 0
    if client is not None:
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = {client.submit(fn, *job, pure=False, key=f"stitch-region-{i}-{token}"): i
                   for i, job in enumerate(jobs)}
        try:
            for future in as_completed(list(futures)):
                results[futures[future]] = future.result()
                done += 1
                if done % step == 0 or done == len(jobs):
                    log.info("stitch: %d/%d region tasks done", done, len(jobs))
        finally:
            client.cancel(list(futures))
        return results
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                done += 1
                if done % step == 0 or done == len(jobs):
                    log.info("stitch: %d/%d region tasks done", done, len(jobs))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def _combine(results: list[RegionResult], shape: tuple[int, int, int], seconds: float) -> StitchSummary:
    steps = None
    if results and results[0].row_steps is not None:
        steps = np.zeros_like(results[0].row_steps)
        for r in results:
            steps += r.row_steps
        steps /= shape[0] * shape[2]
    total = total_sq = 0.0
    for r in results:
        total += r.total
        total_sq += r.total_sq
    return StitchSummary(shape, len(results), seconds, min(r.minimum for r in results),
                         max(r.maximum for r in results), total, total_sq, sum(r.count for r in results), steps,
                         [r.block_results for r in results])


def stitch_tile_stores(
    tile_stores: Sequence[str | os.PathLike[str]],
    out_zarr: str | os.PathLike[str] | None,
    *,
    chunks: Sequence[int] = (64, 64, 64),
    client: Any | None = None,
    threads: int | None = None,
    out_mrc: str | os.PathLike[str] | None = None,
    mrc_labels: Sequence[str] = (),
    seam_steps: bool = False,
    on_block: Callable[[tuple[int, int, int], np.ndarray], Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    compressors: Any = BY_DTYPE,
    memory_mib: float = TASK_MEMORY_MIB,
) -> StitchSummary:
    """Blend tile stores into a new Zarr v3 volume store (and MRC), atomically.

    Parameters
    ----------
    tile_stores : sequence of path-like
        Stores that together hold every tile of one grid exactly once.
    out_zarr : path-like or None
        Output volume store `(d, h, w)` float32 with the stores' voxel size and tilt range
        (:func:`cryo_pipeline.io.zarr_store.create_volume_zarr`); it appears under this name
        only once complete. None: no Zarr (e.g. only the MRC).
    chunks : (z, y, x)
        Output chunks (clipped to the volume); a task is one chunk layer in z.
    client : distributed.Client, optional
        Run the tasks there (:func:`cryo_pipeline.stitch.cluster.start_cluster`).
    threads : int, optional
        Without a client: threads of the local pool (default: the CPUs this process may use).
    out_mrc : path-like, optional
        Also write this MRC (float32, the stores' voxel size; header statistics from the tasks),
        atomically.
    mrc_labels : sequence of str
        Labels of the MRC header.
    seam_steps : bool
        Return the mean |Δ| of every adjacent y-row pair (``StitchSummary.row_step_means``).
    on_block : callable, optional
        The block hook of :mod:`cryo_pipeline.stitch.regions` (e.g. the OME-Zarr writer
        :class:`~cryo_pipeline.io.volume_outputs.OmeZarrBands`);
        must be picklable for a distributed client.
    provenance, extra_attrs
        As for :func:`~cryo_pipeline.io.zarr_store.create_volume_zarr`.
    compressors
        Codec of the output Zarr (default: :func:`~cryo_pipeline.io.zarr_store.final_compressors`,
        i.e. uncompressed float32, written as chunk files directly).
    memory_mib : float
        Memory budget of one task (sets the regions' width).

    Returns
    -------
    StitchSummary
    """
    if out_zarr is None and out_mrc is None:
        raise ValueError("stitch_tile_stores: give out_zarr, out_mrc or both")
    layout = read_tile_layout(tile_stores)
    chunks = tuple(min(c, n) for c, n in zip(as_zyx(tuple(chunks), "chunks"), layout.volume_shape, strict=True))
    if min(chunks) < 1:
        raise ValueError(f"chunks must be positive, got {chunks}")
    regions = plan_regions(layout, chunks, memory_mib=memory_mib)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    tilt_min, tilt_max = layout.tilt_range_deg or (None, None)
    with ExitStack() as stack:
        zarr_path = mrc = None
        if out_zarr is not None:
            zarr_path = stack.enter_context(atomic_write_path(out_zarr))
            create_volume_zarr(zarr_path, layout.volume_shape, chunks=chunks,
                               voxel_size_angstrom=layout.voxel_size_angstrom, tilt_min_deg=tilt_min,
                               tilt_max_deg=tilt_max, provenance=provenance, extra_attrs=extra_attrs,
                               compressors=compressors)
        if out_mrc is not None:
            mrc_path = stack.enter_context(atomic_write_path(out_mrc))
            mrc = create_mrc_regions(mrc_path, layout.volume_shape, voxel_size_angstrom=layout.voxel_size_angstrom,
                                     labels=mrc_labels)
        outputs = RegionOutputs(None if zarr_path is None else str(zarr_path), chunks, mrc, seam_steps, on_block,
                                pin_threads=client is not None)
        start = time.perf_counter()
        results = _run_tasks(stitch_region, [(r, layout, outputs) for r in regions], client=client,
                             threads=max(1, min(threads, len(regions))))
        summary = _combine(results, layout.volume_shape, time.perf_counter() - start)
        if mrc is not None:
            finish_mrc_regions(mrc.path, minimum=summary.minimum, maximum=summary.maximum, total=summary.total,
                               total_sq=summary.total_sq, count=summary.count)
    where = "a distributed cluster" if client is not None else f"{min(threads, len(regions))} thread(s)"
    log.info("stitched %d tile store(s) into %s %s in %.1f s (%d region tasks on %s)", len(layout.stores),
             out_zarr if out_zarr is not None else out_mrc, layout.volume_shape, summary.seconds, len(regions), where)
    return summary
