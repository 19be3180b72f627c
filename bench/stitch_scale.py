"""Benchmarks "stitch_scale" (CN slab grid) and "stitch_scale_tiles" (CryoGEN 3-D tile grid).

Tile stores hold exact crops of a seeded smooth field ``f(z, y, x)`` under ``$TMPDIR`` (deleted
afterwards): ``stitch_scale`` — CN slabs (``plan_slabs(h, slab_px=64, halo_px=8)``: windows of
80 rows, chunks 64 × 80 × full width, uncompressed, as ``fit_slab`` writes them, one store per
slab); ``stitch_scale_tiles`` — the CryoGEN inference grid (64³ tiles, overlap 16, one chunk
per tile, 8 group stores). Each *stitch* arm is a fresh subprocess running
:func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores` as the ``stitch_tiles`` stage does
(local threaded run, ``THREADS`` threads, 64³ output chunks, the output Zarr **and** the MRC,
seam sums for CN); its peak RSS (``VmHWM``) is the worker's peak. The *copy* arm copies the
same number of bytes from one memory-mapped ``.npy`` file to a new one in 64-plane slabs. A
third arm stitches to the Zarr alone (what this benchmark measured before issue 15). The arms
run interleaved copy, stitch, zarr, zarr, stitch, copy, so a loaded shared machine slows them
alike; no arm syncs its output to disk (each output is deleted before
the next arm). After the last stitch every voxel of the Zarr and of the MRC is compared with
``f`` (``max_abs_error``). ``others_busy_cores`` is the CPU other processes used during an arm
(``/proc/stat``), and the load average is recorded before each arm.

Default shapes (zyx): 512 × 2048 × 2048 (8 GiB) for slabs, 256 × 1024 × 1024 (1 GiB; the tile
stores are 2.4× the volume) for tiles; ``--shape ZxYxX`` sets another; ``--quick``: 64 × 256 × 256.
The JSON ``params`` hold ``stitch_s``, ``copy_s`` (medians), ``ratio``, ``peak_worker_rss_mib`` and
``max_abs_error`` (and ``stitch_zarr_only_s``, ``ratio_zarr_only``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchResult, register

REPO = Path(__file__).resolve().parents[1]
SLAB_PX, HALO_PX, CHUNK_PX = 64, 8, 64
TILE_PX, OVERLAP_PX, N_GROUPS = 64, 16, 8
THREADS, REPEATS = 2, 2
DEFAULT_SHAPES = {"slabs": (512, 2048, 2048), "tiles": (256, 1024, 1024)}
QUICK_SHAPE = (64, 256, 256)

_CHILD = r"""
import json, sys, time

from bench.harness import vm_hwm_mib as high_water_mib
from cryo_pipeline.stitch.dask_blend import stitch_tile_stores

args = json.loads(sys.argv[1])
baseline = high_water_mib()
start = time.perf_counter()
summary = stitch_tile_stores(args["stores"], args["out_zarr"], out_mrc=args["out_mrc"], chunks=(args["chunk"],) * 3,
                             threads=args["threads"], seam_steps=args["seam_steps"])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mib": high_water_mib(), "baseline_rss_mib": baseline,
                  "n_tasks": summary.n_tasks, "mean": summary.mean, "rms": summary.rms}))
"""


def _field(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The smooth test volume f(z, y, x) on a grid (broadcast), float32."""
    return (np.sin(0.031 * z + 0.5) * np.cos(0.017 * y) + 0.25 * np.sin(0.023 * x + 0.011 * y)).astype(np.float32)


def _box_field(lo: tuple[int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    z, y, x = (np.arange(a, a + n) for a, n in zip(lo, shape, strict=True))
    return _field(z[:, None, None], y[None, :, None], x[None, None, :])


def _write_slabs(folder: Path, shape: tuple[int, int, int]) -> list[Path]:
    from cryo_pipeline.io.tile_store import create_tile_store
    from cryo_pipeline.ops.slabs import plan_slabs

    d, h, w = shape
    plan = plan_slabs(h, slab_px=min(SLAB_PX, h // 2), halo_px=HALO_PX)
    stores = []
    for i in range(plan.n_slabs):
        start, _ = plan.window(i)
        path = folder / f"slab_{i}.zarr"
        store = create_tile_store(path, origins=np.array([[0, start, 0]]), volume_shape_zyx=shape,
                                  tile_px=(d, plan.window_px, w), overlap_px=(0, plan.blend_overlap_px, 0),
                                  voxel_size_angstrom=10.0, group=i, n_groups=plan.n_slabs,
                                  grid_origins_zyx=[[0], list(plan.origins_y), [0]],
                                  chunk_px=(CHUNK_PX, plan.window_px, w),
                                  extra_attrs={"slab_boundaries_y": list(plan.boundaries_y)})
        for z0 in range(0, d, CHUNK_PX):  # one z-slab of chunks at a time (bounded memory)
            block = _box_field((z0, start, 0), (min(CHUNK_PX, d - z0), plan.window_px, w))
            store[0, z0 : z0 + block.shape[0]] = block
        stores.append(path)
    return stores


def _write_tiles(folder: Path, shape: tuple[int, int, int]) -> list[Path]:
    from cryo_pipeline.io.tile_store import create_tile_store
    from cryo_pipeline.ops.blending import tile_origins_3d

    origins = tile_origins_3d(shape, tile_zyx=TILE_PX, overlap_zyx=OVERLAP_PX)
    stores = []
    for g, mine in enumerate(np.array_split(np.arange(len(origins)), N_GROUPS)):
        path = folder / f"group_{g}.zarr"
        store = create_tile_store(path, origins=origins[mine], volume_shape_zyx=shape, tile_px=TILE_PX,
                                  overlap_px=OVERLAP_PX, voxel_size_angstrom=10.0, group=g, n_groups=N_GROUPS)
        for k0 in range(0, len(mine), 32):  # 32 tiles (32 MiB) at a time
            batch = origins[mine[k0 : k0 + 32]]
            store[k0 : k0 + len(batch)] = np.stack([_box_field(tuple(o), (TILE_PX,) * 3) for o in batch])
        stores.append(path)
    return stores


def _busy_s() -> float:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _timed(fn) -> tuple[Any, float, float]:
    """``(result, wall_s, others_busy_cores)``: CPU of other processes during ``fn`` (not ours, not our children's)."""
    busy, own, kids = _busy_s(), time.process_time(), os.times()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    after = os.times()
    ours = (time.process_time() - own) + (after.children_user - kids.children_user) + (
        after.children_system - kids.children_system)
    return result, wall, max(0.0, (_busy_s() - busy - ours) / wall)


def _copy(folder: Path, shape: tuple[int, int, int]) -> None:
    a = np.load(folder / "source.npy", mmap_mode="r")
    b = np.lib.format.open_memmap(folder / "copy.npy", mode="w+", dtype=np.float32, shape=shape)
    for z0 in range(0, shape[0], CHUNK_PX):
        b[z0 : z0 + CHUNK_PX] = a[z0 : z0 + CHUNK_PX]
    del a, b


def _stitch(folder: Path, stores: list[Path], seam_steps: bool, mrc: bool) -> dict:
    args = {"stores": [str(p) for p in stores], "out_zarr": str(folder / "out.zarr"),
            "out_mrc": str(folder / "out.mrc") if mrc else None, "chunk": CHUNK_PX, "threads": THREADS, "seam_steps": seam_steps}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"stitch subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_error(folder: Path, shape: tuple[int, int, int]) -> float:
    """Max |output − f| over every voxel of the Zarr and of the MRC, 8 planes at a time."""
    from cryo_pipeline.io.mrc import read_mrc_memmap
    from cryo_pipeline.io.zarr_store import open_volume_zarr
    from cryo_pipeline.ops.blending import release_pages

    volume = open_volume_zarr(folder / "out.zarr")
    mrc, _ = read_mrc_memmap(folder / "out.mrc")
    worst = 0.0
    for z0 in range(0, shape[0], 8):
        expected = _box_field((z0, 0, 0), (min(8, shape[0] - z0), shape[1], shape[2]))
        worst = max(worst, float(np.abs(volume[z0 : z0 + 8] - expected).max()),
                    float(np.abs(mrc[z0 : z0 + 8] - expected).max()))
        release_pages(mrc)
    return worst


def _remove_outputs(folder: Path) -> None:
    for name in ("out.zarr", "out.mrc", "copy.npy"):
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _run(grid: str, quick: bool, shape: tuple[int, int, int] | None) -> BenchResult:
    shape = tuple(shape) if shape is not None else (QUICK_SHAPE if quick else DEFAULT_SHAPES[grid])
    gib = float(np.prod(shape)) * 4 / 2**30
    folder = Path(tempfile.mkdtemp(prefix=f"cryo_stitch_{grid}_bench_"))
    rows: list[dict[str, Any]] = []
    try:
        stores, write_s, _ = _timed(lambda: (_write_slabs if grid == "slabs" else _write_tiles)(folder, shape))
        stored_gib = sum(p.stat().st_size for s in stores for p in Path(s).rglob("*") if p.is_file()) / 2**30
        source = np.lib.format.open_memmap(folder / "source.npy", mode="w+", dtype=np.float32, shape=shape)
        for z0 in range(0, shape[0], CHUNK_PX):
            source[z0 : z0 + CHUNK_PX] = 1.0
        del source
        rows.append({"arm": f"write the {len(stores)} tile stores (input)", "wall_s": round(write_s, 2),
                     "GiB_per_s": round(stored_gib / write_s, 3)})
        order = ["copy", "stitch", "zarr", "zarr", "stitch", "copy"] * (REPEATS // 2)
        order += ["copy", "stitch", "zarr"] * (REPEATS % 2)
        last_stitch = max(i for i, a in enumerate(order) if a == "stitch")
        for i, arm in enumerate(order):
            load = os.getloadavg()[0]
            if arm == "copy":
                _, wall, others = _timed(lambda: _copy(folder, shape))
                rows.append({"arm": "copy (memmap -> memmap)", "wall_s": round(wall, 2),
                             "GiB_per_s": round(gib / wall, 3), "others_busy_cores": round(others, 2),
                             "loadavg_1min": round(load, 2)})
            else:
                child, wall, others = _timed(lambda: _stitch(folder, stores, grid == "slabs", arm == "stitch"))
                what = "Zarr + MRC (as the stage)" if arm == "stitch" else "Zarr only"
                rows.append({"arm": f"{arm} -> {what}, {THREADS} threads", "wall_s": round(child["seconds"], 2),
                             "GiB_per_s": round(gib / child["seconds"], 3), "others_busy_cores": round(others, 2),
                             "loadavg_1min": round(load, 2), "peak_worker_rss_mib": round(child["peak_rss_mib"], 1),
                             "baseline_rss_mib": round(child["baseline_rss_mib"], 1), "n_tasks": child["n_tasks"],
                             "process_wall_s": round(wall, 2)})
            if i == last_stitch:
                error = _max_error(folder, shape)
            _remove_outputs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stitch_rows = [r for r in rows if r["arm"].startswith("stitch")]
    zarr_rows = [r for r in rows if r["arm"].startswith("zarr")]
    copy_rows = [r for r in rows if r["arm"].startswith("copy")]
    stitch_s = statistics.median(r["wall_s"] for r in stitch_rows)
    zarr_s = statistics.median(r["wall_s"] for r in zarr_rows)
    copy_s = statistics.median(r["wall_s"] for r in copy_rows)
    peak = max(r["peak_worker_rss_mib"] for r in stitch_rows + zarr_rows)
    summary = {"stitch_s": stitch_s, "copy_s": copy_s, "ratio": round(stitch_s / copy_s, 3),
               "peak_worker_rss_mib": peak, "max_abs_error": error, "stitch_zarr_only_s": zarr_s,
               "ratio_zarr_only": round(zarr_s / copy_s, 3)}
    grid_text = (f"CN slabs of {SLAB_PX} rows + {HALO_PX} halo (chunks {CHUNK_PX} x window x full width)"
                 if grid == "slabs" else f"CryoGEN tiles {TILE_PX}^3, overlap {OVERLAP_PX}, {N_GROUPS} group stores")
    name = "stitch_scale" if grid == "slabs" else "stitch_scale_tiles"
    if shape != (QUICK_SHAPE if quick else DEFAULT_SHAPES[grid]):
        name = f"{name}_{'x'.join(map(str, shape))}"
    return BenchResult(
        name=name,
        params={"quick": quick, "grid": grid, "shape_zyx": list(shape), "volume_gib": round(gib, 3),
                "stored_tiles_gib": round(stored_gib, 3), "threads": THREADS, "chunk_px": CHUNK_PX,
                "cpu_count": os.cpu_count(), **summary},
        rows=rows,
        notes=[f"volume {shape} float32 = {gib:.2f} GiB; {len(stores)} stores, {grid_text}; {stored_gib:.2f} GiB "
               f"stored; output chunks {CHUNK_PX}^3 (Zarr) + MRC, written by the region tasks",
               f"stitch (Zarr + MRC, as the stage) / copy = {summary['ratio']:.2f}, stitch to the Zarr alone / copy "
               f"= {summary['ratio_zarr_only']:.2f} (medians of {len(stitch_rows)}, {len(zarr_rows)} and "
               f"{len(copy_rows)} interleaved runs); peak worker RSS {peak:.0f} MiB (includes the Python baseline after imports, "
               f"~{stitch_rows[0]['baseline_rss_mib']:.0f} MiB); max |error| over every voxel of both outputs "
               f"{error:.3g}",
               "shared machine: see others_busy_cores and loadavg_1min per arm; neither arm syncs to disk"],
    )


@register("stitch_scale")
def run(*, quick: bool = False, shape: tuple[int, int, int] | None = None) -> BenchResult:
    """CN slab stitch (Zarr + MRC) vs a memmap copy of the same bytes, interleaved; peak RSS; every voxel checked."""
    return _run("slabs", quick, shape)


@register("stitch_scale_tiles")
def run_tiles(*, quick: bool = False, shape: tuple[int, int, int] | None = None) -> BenchResult:
    """CryoGEN 3-D tile-grid stitch (Zarr + MRC) vs a memmap copy of the same bytes, interleaved."""
    return _run("tiles", quick, shape)
