"""Benchmark "volume_passes": the whole-volume stages of a large tomogram against their I/O bound.

A seeded tomogram-like float32 volume (σ = 2 smooth structure + white noise, as in
``bench/deconvolution.py``) and a second one as "ground truth" are written as MRC files; then
each stage runs in a **fresh subprocess** (its own peak RSS, ``VmHWM``), interleaved with its
*I/O bound*: a process that reads the same input bytes and writes the same output bytes
(memory-mapped, 64-plane slabs) and does nothing else. Stages: ``bin_tomogram`` (factor 2),
``deconvolve_tomogram`` (chunked, 128 px chunks), ``make_mask`` and ``evaluate`` (with the
ground truth: PSNR/SSIM both families, FSC and directional FSC, wedge fill). Rounds alternate
the order (stage, bound), (bound, stage); ``ratio`` = median stage time / median bound time.

Default 256 × 1024 × 1024 (1 GiB); ``--shape ZxYxX`` sets another; ``--quick``: 64 × 256 × 256.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchResult, register

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHAPE, QUICK_SHAPE = (256, 1024, 1024), (64, 256, 256)
REPEATS = 2
VOXEL = 10.0

_CHILD = r"""
import json, sys, time
from pathlib import Path

from bench.harness import vm_hwm_mib as high_water_mib
args = json.loads(sys.argv[1])
stage, src, out = args["stage"], Path(args["src"]), Path(args["out"])
import numpy as np
from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config import stages as configs
row = DatasetRow.model_validate({"dataset": "bench", "kind": "synthetic", "source": str(src), "tilt_min_deg": -60,
    "tilt_max_deg": 60, "voltage_kv": 300, "cs_mm": 2.7, "defocus_angstrom": 30000, "voxel_size_angstrom": 10.0,
    "corruption": "tiltseries", "tilt_step_deg": 2.0})
baseline = high_water_mib()
start = time.perf_counter()
if stage == "io_bound":
    from cryo_pipeline.io.mrc import read_mrc_memmap
    from cryo_pipeline.ops.blending import release_pages
    srcs = [read_mrc_memmap(Path(p))[0] for p in args["inputs"]]
    dst = np.lib.format.open_memmap(out, mode="w+", dtype=np.dtype(args["out_dtype"]), shape=tuple(args["out_shape"]))
    total = 0.0
    for z in range(0, max(s.shape[0] for s in srcs), 64):
        for s in srcs:
            total += float(np.asarray(s[z : z + 64]).ravel()[::4096].sum())  # touch every page
            release_pages(s)
    for z in range(0, dst.shape[0], 64):
        dst[z : z + 64] = 1
    del dst
elif stage == "bin_tomogram":
    from cryo_pipeline.stages import bin_tomogram
    bin_tomogram.run(tomogram_path=src, dataset=row, cfg=configs.BinConfig(factor=2.0), out=out)
elif stage == "deconvolve_tomogram":
    from cryo_pipeline.stages import deconvolve_tomogram
    deconvolve_tomogram.run(tomogram_path=src, dataset=row, cfg=configs.DeconvolveConfig(chunk_size_px=128), out=out)
elif stage == "make_mask":
    from cryo_pipeline.stages import make_mask
    make_mask.run(tomogram_path=src, dataset=row, cfg=configs.MaskConfig(), out=out)
elif stage == "evaluate":
    from cryo_pipeline.stages import evaluate
    evaluate.run(volume_path=src, dataset=row, method="wbp", cfg=configs.EvaluateConfig(), out=out,
                 curves_out=out.with_suffix(".curves.json"), ground_truth_path=Path(args["truth"]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mib": high_water_mib(), "baseline_rss_mib": baseline}))
"""


def _write_volume(path: Path, shape: tuple[int, int, int], seed: int) -> None:
    """Seeded tomogram-like volume, written 32 planes at a time (σ = 2 smooth structure + noise)."""
    import scipy.ndimage as ndi

    from cryo_pipeline.io.mrc_regions import create_mrc_regions, finish_mrc_regions

    rng = np.random.default_rng(seed)
    writer = create_mrc_regions(path, shape, voxel_size_angstrom=VOXEL)
    total = total_sq = 0.0
    lo, hi = np.inf, -np.inf
    for z0 in range(0, shape[0], 32):
        block = ndi.gaussian_filter(rng.standard_normal((min(32, shape[0] - z0), *shape[1:]), dtype=np.float32),
                                    2.0, mode="wrap") * 4.0
        block += 2.0 * rng.standard_normal(block.shape, dtype=np.float32)
        writer.write((z0, 0, 0), block)
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        total += float(block.sum(dtype=np.float64))
        total_sq += float(np.square(block, dtype=np.float64).sum())
    finish_mrc_regions(path, minimum=lo, maximum=hi, total=total, total_sq=total_sq, count=int(np.prod(shape)))


def _child(args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"{args['stage']} subprocess failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _output_of(stage: str, shape: tuple[int, int, int]) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of what a stage writes (for its I/O bound)."""
    if stage == "bin_tomogram":
        return tuple(n // 2 for n in shape), "float32"
    if stage == "make_mask":
        return shape, "int8"
    if stage == "evaluate":
        return (1,), "float32"
    return shape, "float32"


@register("volume_passes")
def run(*, quick: bool = False, shape: tuple[int, int, int] | None = None) -> BenchResult:
    """Binning, chunked deconvolution, masking and evaluation vs their I/O bound, interleaved."""
    shape = tuple(shape) if shape is not None else (QUICK_SHAPE if quick else DEFAULT_SHAPE)
    mib = float(np.prod(shape)) * 4 / 2**20
    folder = Path(tempfile.mkdtemp(prefix="cryo_volume_passes_"))
    rows: list[dict[str, Any]] = []
    try:
        src, truth = folder / "tomo.mrc", folder / "truth.mrc"
        _write_volume(src, shape, seed=0)
        _write_volume(truth, shape, seed=1)
        for stage in ("bin_tomogram", "deconvolve_tomogram", "make_mask", "evaluate"):
            out_shape, out_dtype = _output_of(stage, shape)
            inputs = [str(src)] + ([str(truth)] if stage == "evaluate" else [])
            runs: dict[str, list[dict[str, Any]]] = {"stage": [], "bound": []}
            for r in range(REPEATS):
                for arm in (("stage", "bound") if r % 2 == 0 else ("bound", "stage")):
                    out = folder / ("out.tsv" if stage == "evaluate" and arm == "stage" else "out.mrc")
                    load = os.getloadavg()[0]
                    args = {"stage": stage if arm == "stage" else "io_bound", "src": str(src), "out": str(out),
                            "truth": str(truth), "inputs": inputs, "out_shape": list(out_shape),
                            "out_dtype": out_dtype}
                    result = _child(args)
                    result["loadavg_1min"] = load
                    runs[arm].append(result)
                    for leftover in folder.glob("out*"):
                        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            stage_s = statistics.median(r["seconds"] for r in runs["stage"])
            bound_s = statistics.median(r["seconds"] for r in runs["bound"])
            rows.append({"stage": stage, "seconds": round(stage_s, 2), "io_bound_s": round(bound_s, 2),
                         "ratio": round(stage_s / bound_s, 2),
                         "input_mib": round(mib * len(inputs), 1),
                         "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs["stage"]), 1),
                         "peak_over_input": round(max(r["peak_rss_mib"] for r in runs["stage"]) / mib, 2),
                         "loadavg_1min": round(statistics.mean(r["loadavg_1min"] for r in runs["stage"]), 1),
                         "runs_s": [r["seconds"] for r in runs["stage"]],
                         "io_bound_runs_s": [r["seconds"] for r in runs["bound"]]})
            print(f"[bench volume_passes] {stage}: {stage_s:.1f} s vs I/O bound {bound_s:.1f} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return BenchResult(
        name="volume_passes" if shape in (DEFAULT_SHAPE, QUICK_SHAPE) else f"volume_passes_{'x'.join(map(str, shape))}",
        params={"quick": quick, "shape_zyx": list(shape), "volume_mib": round(mib, 1), "repeats": REPEATS,
                "cpu_count": os.cpu_count()},
        rows=rows,
        notes=[f"volume {shape} float32 ({mib:.0f} MiB); each run a fresh process; medians of {REPEATS} runs per arm, "
               "stage and I/O bound interleaved (alternating order). io_bound = reading the stage's input(s) and "
               "writing its output's bytes with nothing in between; peak_rss_mib = the stage process's VmHWM.",
               "shared machine: loadavg_1min is the 1-minute load average at the start of the stage's runs."],
    )
