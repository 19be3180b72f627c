"""Benchmarks "stitch_scale" (CN slab grid) and "stitch_scale_tiles" (CryoGEN 3-D tile grid).

Tile stores hold exact crops of a seeded smooth field ``f(z, y, x)`` under ``$TMPDIR`` (deleted
afterwards): ``stitch_scale`` — CN slabs (``plan_slabs(h, slab_px=64, halo_px=8)``: windows of
80 rows, chunks 64 × 80 × full width, uncompressed, as ``fit_slab`` writes them, one store per
slab); ``stitch_scale_tiles`` — the CryoGEN inference grid (64³ tiles, overlap 16, one chunk
per tile, 8 group stores). Every stitch arm is a fresh subprocess on ``THREADS`` threads with
64³ output chunks; its peak RSS (``VmHWM``, the interpreter included) is the worker's peak:

* ``stitch``: :func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores` to the output Zarr,
  the tasks returning the MRC header sums and (CN) the seam row steps — the stitch itself,
  what this benchmark timed before issue 15 (1223 s for 8 GiB);
* ``stitch + MRC``: the same, also writing the MRC from the tasks;
* ``stage``: :func:`cryo_pipeline.stages.stitch_tiles.run` as the rules run it — Zarr, MRC,
  ``volume.ome.zarr`` with its pyramid (the tasks' block hook) and the record.

The *copy* arm copies the same number of bytes (one volume) from one memory-mapped ``.npy``
file to a new one in 64-plane slabs. The arms run interleaved (copy, stitch, stitch + MRC,
stage, then the reverse), so a loaded shared machine slows them alike; no arm syncs its output
to disk (each output is deleted before the next arm). Every voxel of the last ``stitch`` arm's
Zarr and of the last ``stage`` arm's Zarr, MRC and OME-Zarr level 0 is compared with ``f``
(``max_abs_error``). ``others_busy_cores`` is the CPU other processes used during an arm
(``/proc/stat``), and the load average is recorded before each arm.

Default shapes (zyx): 512 × 2048 × 2048 (8 GiB) for slabs, 256 × 1024 × 1024 (1 GiB; the tile
stores are 2.2× the volume) for tiles; ``--shape ZxYxX`` sets another; ``--quick``: 64 × 256 × 256.
The JSON ``params`` hold ``stitch_s``, ``copy_s`` (medians), ``ratio`` (stitch / copy),
``peak_worker_rss_mib`` (over every stitch arm) and ``max_abs_error``, and ``stitch_mrc_s``,
``ratio_mrc``, ``stage_s``, ``ratio_stage``.
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
from pathlib import Path

from bench.harness import vm_hwm_mib as high_water_mib
from cryo_pipeline.stitch.dask_blend import read_tile_layout, stitch_tile_stores
from cryo_pipeline.stitch.regions import plan_regions

args = json.loads(sys.argv[1])
baseline = high_water_mib()
start = time.perf_counter()
if args["arm"] == "stage":
    from cryo_pipeline.config.stages import StitchConfig
    from cryo_pipeline.stages import stitch_tiles

    stitch_tiles.run(tile_stores=[Path(p) for p in args["stores"]], out=Path(args["out_mrc"]),
                     out_zarr=Path(args["out_zarr"]), threads=args["threads"], cfg=StitchConfig(chunk_px=args["chunk"]))
    n_tasks = len(plan_regions(read_tile_layout(args["stores"]), (args["chunk"],) * 3))
else:
    n_tasks = stitch_tile_stores(args["stores"], args["out_zarr"], out_mrc=args["out_mrc"], chunks=(args["chunk"],) * 3,
                                 threads=args["threads"], seam_steps=args["seam_steps"]).n_tasks
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mib": high_water_mib(), "baseline_rss_mib": baseline,
                  "n_tasks": n_tasks}))
"""
ARMS = {"stitch": "stitch -> Zarr (+ header and seam sums)", "mrc": "stitch -> Zarr + MRC",
        "stage": "stage: Zarr + MRC + OME-Zarr + record"}


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


def _stitch(folder: Path, stores: list[Path], seam_steps: bool, arm: str) -> dict:
    args = {"stores": [str(p) for p in stores], "out_zarr": str(folder / "out.zarr"), "arm": arm,
            "out_mrc": str(folder / "out.mrc") if arm != "stitch" else None, "chunk": CHUNK_PX, "threads": THREADS,
            "seam_steps": seam_steps}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"stitch subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_error(folder: Path, shape: tuple[int, int, int], arm: str) -> float:
    """Max |output − f| over every voxel of the arm's outputs (Zarr; MRC and OME-Zarr level 0), 8 planes at a time."""
    import zarr

    from cryo_pipeline.io.mrc import read_mrc_memmap
    from cryo_pipeline.io.zarr_store import open_volume_zarr
    from cryo_pipeline.ops.blending import release_pages

    outputs = [open_volume_zarr(folder / "out.zarr")]
    if arm != "stitch":
        outputs.append(read_mrc_memmap(folder / "out.mrc")[0])
    if arm == "stage":
        outputs.append(zarr.open_array(str(folder / "out.ome.zarr" / "s0"), mode="r"))
    worst = 0.0
    for z0 in range(0, shape[0], 8):
        expected = _box_field((z0, 0, 0), (min(8, shape[0] - z0), shape[1], shape[2]))
        for output in outputs:
            worst = max(worst, float(np.abs(output[z0 : z0 + 8] - expected).max()))
        if arm != "stitch":
            release_pages(outputs[1])
    return worst


def _remove_outputs(folder: Path) -> None:
    for name in ("out.zarr", "out.mrc", "out.ome.zarr", "out.json", "copy.npy"):
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
        forward = ["copy", "stitch", "mrc", "stage"]
        order = (forward + forward[::-1]) * (REPEATS // 2) + forward * (REPEATS % 2)
        last = {arm: max(i for i, a in enumerate(order) if a == arm) for arm in ARMS}
        errors = []
        for i, arm in enumerate(order):
            load = os.getloadavg()[0]
            if arm == "copy":
                _, wall, others = _timed(lambda: _copy(folder, shape))
                rows.append({"arm": "copy (memmap -> memmap)", "wall_s": round(wall, 2),
                             "GiB_per_s": round(gib / wall, 3), "others_busy_cores": round(others, 2),
                             "loadavg_1min": round(load, 2)})
            else:
                child, wall, others = _timed(lambda: _stitch(folder, stores, grid == "slabs", arm))
                rows.append({"arm": f"{ARMS[arm]}, {THREADS} threads", "wall_s": round(child["seconds"], 2),
                             "GiB_per_s": round(gib / child["seconds"], 3), "others_busy_cores": round(others, 2),
                             "loadavg_1min": round(load, 2), "peak_worker_rss_mib": round(child["peak_rss_mib"], 1),
                             "baseline_rss_mib": round(child["baseline_rss_mib"], 1), "n_tasks": child["n_tasks"],
                             "process_wall_s": round(wall, 2)})
            if arm in ("stitch", "stage") and i == last[arm]:
                errors.append(_max_error(folder, shape, arm))
            _remove_outputs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    by_arm = {arm: [r for r in rows if r["arm"].startswith(text)] for arm, text in
              [("copy", "copy"), *[(a, t) for a, t in ARMS.items()]]}
    median = {arm: statistics.median(r["wall_s"] for r in arm_rows) for arm, arm_rows in by_arm.items()}
    stitch_rows = by_arm["stitch"] + by_arm["mrc"] + by_arm["stage"]
    peak = max(r["peak_worker_rss_mib"] for r in stitch_rows)
    error = max(errors)
    copy_s = median["copy"]
    summary = {"stitch_s": median["stitch"], "copy_s": copy_s, "ratio": round(median["stitch"] / copy_s, 3),
               "peak_worker_rss_mib": peak, "max_abs_error": error, "stitch_mrc_s": median["mrc"],
               "ratio_mrc": round(median["mrc"] / copy_s, 3), "stage_s": median["stage"],
               "ratio_stage": round(median["stage"] / copy_s, 3),
               "peak_stage_rss_mib": max(r["peak_worker_rss_mib"] for r in by_arm["stage"]),
               "loadavg_1min_mean": round(statistics.mean(r["loadavg_1min"] for r in rows if "loadavg_1min" in r), 2)}
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
               f"stored; output chunks {CHUNK_PX}^3, every output written by the region tasks",
               f"stitch / copy = {summary['ratio']:.2f}; stitch + MRC / copy = {summary['ratio_mrc']:.2f}; the stage "
               f"(Zarr + MRC + OME-Zarr) / copy = {summary['ratio_stage']:.2f} (medians of {len(by_arm['stitch'])} "
               f"runs per arm, interleaved); peak worker RSS {peak:.0f} MiB over every stitch arm (the interpreter "
               f"after imports is ~{stitch_rows[0]['baseline_rss_mib']:.0f} MiB of it); max |error| over every voxel "
               f"of every output checked {error:.3g}",
               f"shared machine: mean 1-min load average {summary['loadavg_1min_mean']} (2 cores); see "
               "others_busy_cores and loadavg_1min per arm; no arm syncs to disk"],
    )


@register("stitch_scale")
def run(*, quick: bool = False, shape: tuple[int, int, int] | None = None) -> BenchResult:
    """CN slab stitch (and the stage's outputs) vs a memmap copy of the same bytes, interleaved; peak RSS; every voxel."""
    return _run("slabs", quick, shape)


@register("stitch_scale_tiles")
def run_tiles(*, quick: bool = False, shape: tuple[int, int, int] | None = None) -> BenchResult:
    """CryoGEN 3-D tile-grid stitch (and the stage's outputs) vs a memmap copy of the same bytes, interleaved."""
    return _run("tiles", quick, shape)
