"""Benchmark "stitch_scale": the Dask slab stitch of a 2048 × 2048 × 512 float32 volume (8 GiB).

32 CN-style slab tile stores (``plan_slabs(2048, slab_px=64, halo_px=8)``: windows of 80
rows, chunked 64 × 80 × 64) hold exact crops of a seeded smooth function ``f(z, y, x)``;
they are written under ``$TMPDIR`` (deleted afterwards). The stitch
(:func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores`, 64³ output chunks) then runs
on a ``distributed.LocalCluster`` of 2 single-threaded worker processes with a memory
limit of 1 GB each (an eighth of the volume each). Reported: wall time, throughput,
each worker's peak RSS (``ru_maxrss``, read on the workers), the maximum error against
``f`` on sampled chunks (blending exact crops must return them), and a plain numpy copy
of the same bytes (one memory-mapped file to another, 64-row slabs) for scale.
``--quick``: 64 × 256 × 256.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchResult, register
from cryo_pipeline.io.tile_store import create_tile_store
from cryo_pipeline.io.zarr_store import open_volume_zarr
from cryo_pipeline.ops.slabs import plan_slabs
from cryo_pipeline.stitch.cluster import start_cluster
from cryo_pipeline.stitch.dask_blend import stitch_tile_stores

FULL_SHAPE, QUICK_SHAPE = (512, 2048, 2048), (64, 256, 256)
SLAB_PX, HALO_PX, CHUNK_PX = 64, 8, 64
WORKERS, WORKER_MEMORY_MB = 2, 1000


def _field(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The smooth test volume f(z, y, x) on a grid (broadcast), float32."""
    return (np.sin(0.031 * z + 0.5) * np.cos(0.017 * y) + 0.25 * np.sin(0.023 * x + 0.011 * y)).astype(np.float32)


def _write_slabs(folder: Path, shape: tuple[int, int, int]) -> list[Path]:
    d, h, w = shape
    plan = plan_slabs(h, slab_px=SLAB_PX, halo_px=HALO_PX)
    z, x = np.arange(d)[:, None, None], np.arange(w)[None, None, :]
    stores = []
    for i in range(plan.n_slabs):
        start, stop = plan.window(i)
        path = folder / f"slab_{i}.zarr"
        store = create_tile_store(path, origins=np.array([[0, start, 0]]), volume_shape_zyx=shape,
                                  tile_px=(d, plan.window_px, w), overlap_px=(0, plan.blend_overlap_px, 0),
                                  voxel_size_angstrom=10.0, group=i, n_groups=plan.n_slabs,
                                  grid_origins_zyx=[[0], list(plan.origins_y), [0]],
                                  chunk_px=(CHUNK_PX, plan.window_px, CHUNK_PX))
        for z0 in range(0, d, CHUNK_PX):  # one z-slab of chunks at a time (bounded memory)
            zz = z[z0 : z0 + CHUNK_PX]
            store[0, z0 : z0 + CHUNK_PX] = _field(zz, np.arange(start, stop)[None, :, None], x)
        stores.append(path)
    return stores


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _numpy_copy_s(folder: Path, shape: tuple[int, int, int]) -> float:
    source = np.lib.format.open_memmap(folder / "a.npy", mode="w+", dtype=np.float32, shape=shape)
    for z0 in range(0, shape[0], CHUNK_PX):
        source[z0 : z0 + CHUNK_PX] = 1.0
    source.flush()
    del source
    start = time.perf_counter()
    a = np.load(folder / "a.npy", mmap_mode="r")
    b = np.lib.format.open_memmap(folder / "b.npy", mode="w+", dtype=np.float32, shape=shape)
    for z0 in range(0, shape[0], CHUNK_PX):
        b[z0 : z0 + CHUNK_PX] = a[z0 : z0 + CHUNK_PX]
    b.flush()
    del a, b
    return time.perf_counter() - start


def _max_error(out: Path, shape: tuple[int, int, int], n_samples: int = 24) -> float:
    volume = open_volume_zarr(out)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(n_samples):
        lo = [int(rng.integers(0, n - min(n, CHUNK_PX) + 1)) for n in shape]
        box = tuple(slice(a, a + min(n, CHUNK_PX)) for a, n in zip(lo, shape, strict=True))
        z, y, x = (np.arange(s.start, s.stop) for s in box)
        expected = _field(z[:, None, None], y[None, :, None], x[None, None, :])
        worst = max(worst, float(np.abs(volume[box] - expected).max()))
    return worst


@register("stitch_scale")
def run(*, quick: bool = False) -> BenchResult:
    """Dask slab stitch of an 8 GiB volume with workers limited to 1 GB each, vs a numpy copy."""
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    gib = np.prod(shape) * 4 / 2**30
    folder = Path(tempfile.mkdtemp(prefix="cryo_stitch_bench_"))
    try:
        start = time.perf_counter()
        stores = _write_slabs(folder, shape)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        with start_cluster(threads=WORKERS, memory_limit_mb=WORKERS * WORKER_MEMORY_MB) as client:
            stitch_tile_stores(stores, folder / "out.zarr", client=client, chunks=(CHUNK_PX,) * 3)
            stitch_s = time.perf_counter() - start
            worker_peaks = sorted(client.run(_peak_rss_mib).values())
        error = _max_error(folder / "out.zarr", shape)
        shutil.rmtree(folder / "out.zarr")
        for path in stores:
            shutil.rmtree(path)
        copy_s = _numpy_copy_s(folder, shape)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows: list[dict[str, Any]] = [
        {"step": "write 32 slab stores (input)" if not quick else "write slab stores (input)",
         "wall_s": round(write_s, 1), "GiB/s": round(gib * (1 + 2 * HALO_PX / SLAB_PX) / write_s, 3),
         "peak_worker_rss_mib": None, "max_abs_error": None},
        {"step": f"Dask stitch ({WORKERS} workers x {WORKER_MEMORY_MB} MB limit)", "wall_s": round(stitch_s, 1),
         "GiB/s": round(gib / stitch_s, 3), "peak_worker_rss_mib": [round(p) for p in worker_peaks],
         "max_abs_error": error},
        {"step": "numpy copy of the same bytes (memmap -> memmap)", "wall_s": round(copy_s, 1),
         "GiB/s": round(gib / copy_s, 3), "peak_worker_rss_mib": None, "max_abs_error": None},
    ]
    notes = [f"volume {shape} float32 = {gib:.2f} GiB; {len(stores)} slabs of {SLAB_PX} rows + {HALO_PX} halo; "
             f"output chunks {CHUNK_PX}^3; stitch / numpy copy = {stitch_s / copy_s:.1f}x",
             f"peak worker RSS {max(worker_peaks):.0f} MiB = {max(worker_peaks) / 1024 / gib:.3f} of the volume"]
    return BenchResult(name="stitch_scale", params={"quick": quick, "shape_zyx": list(shape), "workers": WORKERS,
                                                     "worker_memory_limit_mb": WORKER_MEMORY_MB}, rows=rows,
                       notes=notes)
