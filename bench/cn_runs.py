"""Shared steps of the CN benchmarks: simulate a case, run the CN / WBP stages on it, score it.

Everything goes through the pipeline's own stage functions (``simulate_volume``,
``project_tilt_series``, ``plan_slabs``, ``fit_slab_seed``, ``fit_slab``, ``stitch_slabs``'
stitcher, ``reconstruct_wbp``) on files in a temporary folder, in this process and
single-threaded, so a benchmark measures what the workflow runs. The scores are the
``evaluate`` stage's metrics plus the seam ratio at given slab boundaries.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import CnConfig, ProjectConfig, SimulateConfig, StitchConfig, WbpConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.binning import bin_volume_3d
from cryo_pipeline.ops.fsc import fsc_metrics
from cryo_pipeline.ops.metrics import fit_affine_to_reference, scored_metrics
from cryo_pipeline.ops.metrics_cn_paper import psnr_cn_paper_db, ssim_cn_paper
from cryo_pipeline.ops.slabs import row_step_means, seam_ratio
from cryo_pipeline.stages import fit_slab, plan_slabs, project_tilt_series, reconstruct_wbp, simulate_volume
from cryo_pipeline.stages import stitch_tiles

REPO = Path(__file__).resolve().parents[1]
CPU_SCALE = {"width": 64, "n_hidden_layers": 3, "seed_iterations": 200, "slab_iterations": 100,
             "slab_rows_per_step": None}
"""The CN benchmarks' base on top of the demo's cn section: a 3 × 64 SIREN and 2/3 of the demo's steps, every
fit at ``rows_per_step`` rows (whatever the demo's ``slab_rows_per_step``); arms comparing rows per step set theirs."""
QUICK_SCALE = {"width": 32, "n_hidden_layers": 2, "seed_iterations": 20, "slab_iterations": 10,
               "slab_rows_per_step": None}
"""``--quick`` runs: a smoke test of the code path, not a measurement."""
SCORE_KEYS = ("psnr_db", "psnr_paper_db", "psnr_cn_paper_db", "ssim", "ssim_global", "ssim_cn_paper",
              "dfsc_measured_mean", "dfsc_missing_mean", "seam_ratio", "seam_ratio_gt")


def budget_row_steps(base: CnConfig, *, n_slabs: int, height_px: int) -> int:
    """Rows seen by ``base``'s seed and ``n_slabs`` slab fits at its ``rows_per_step``: the compute the CN benchmarks
    hold equal across arms (a step costs in proportion to its rows)."""
    return (base.seed_iterations + n_slabs * base.slab_iterations) * (base.rows_per_step or height_px)


def half_seed_schedule(base: CnConfig, *, n_slabs: int, total_row_steps: int) -> CnConfig:
    """``base`` with half of ``total_row_steps`` in a seed of 1-row steps on the whole height and the other half
    split over ``n_slabs`` fits (slabs, or one network when 1) in 1-row steps (``cn_slabs``' half-seed schedule)."""
    seed = total_row_steps // 2
    return base.model_copy(update={"rows_per_step": 1, "seed_iterations": seed, "slab_rows_per_step": 1,
                                   "slab_iterations": (total_row_steps - seed) // n_slabs})


def demo_cn_config(**update) -> CnConfig:
    """The ``cn`` section of ``config/config.yaml`` (what the demo ships), with ``update`` applied."""
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["cn"]
    return CnConfig.model_validate({**section, **update})


def simulate_case(folder: Path, *, source: str, seed: int, snr: float | None, shape_zyx=None,
                  projector: str = "supersampled", voxel_size_angstrom: float = 10.0,
                  tilt_range_deg: tuple[float, float] = (-60.0, 60.0), tilt_step_deg: float = 2.0,
                  bin_factor: float = 1.0) -> DatasetRow:
    """Ground truth ``gt.mrc`` and tilt series ``ts.mrc`` + ``ts.tlt`` in ``folder``; the sheet row.

    A map is rotated (seeded) and normalised by ``simulate_volume``, then Fourier-binned by
    ``bin_factor`` (CPU scale) before it is projected.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shape = "x".join(str(n) for n in shape_zyx) if shape_zyx is not None else None
    row = DatasetRow(dataset=f"{Path(source).stem}_{seed}", kind="synthetic", source=source,
                     voxel_size_angstrom=voxel_size_angstrom, tilt_min_deg=tilt_range_deg[0],
                     tilt_max_deg=tilt_range_deg[1], tilt_step_deg=tilt_step_deg, corruption="tiltseries",
                     snr=snr, methods=("wbp", "cn"), seed=seed, shape_px=shape)
    simulate_volume.run(dataset=row, cfg=SimulateConfig(), out=folder / "gt.mrc")
    if bin_factor != 1.0:
        truth = read_mrc(folder / "gt.mrc")
        write_mrc(folder / "gt.mrc", bin_volume_3d(truth.data, factor=bin_factor),
                  voxel_size_angstrom=truth.voxel_size_angstrom * bin_factor)
    project_tilt_series.run(volume_path=folder / "gt.mrc", dataset=row, cfg=ProjectConfig(projector=projector),
                            out=folder / "ts.mrc", angles_out=folder / "ts.tlt")
    return row


def run_cn(folder: Path, row: DatasetRow, cfg: CnConfig) -> tuple[np.ndarray, dict]:
    """plan → seed → every slab → stitch, as the workflow runs them (slabs one after another here).

    Returns
    -------
    volume : `(d, h, w)` float32
    record : dict
        ``boundaries_y``, ``n_slabs``, ``critical_path_s`` (seed + slowest slab + stitch: the
        wall time with one job per slab), ``compute_s`` (seed + all slabs + stitch) and
        ``steps`` (optimiser steps of all networks) and ``row_steps`` (the rows those steps
        saw: the compute, as a step's cost is proportional to its rows).
    """
    work = folder / f"cn_{time.monotonic_ns()}"
    work.mkdir()
    ts, tlt, gt = folder / "ts.mrc", folder / "ts.tlt", folder / "gt.mrc"
    plan = plan_slabs.run(tilt_series_path=ts, angles_path=tlt, dataset=row, cfg=cfg, out=work / "plan.json",
                          reference_volume_path=gt)
    start = time.perf_counter()
    fit_slab.run_seed(tilt_series_path=ts, plan_path=work / "plan.json", dataset=row, cfg=cfg,
                      out_model=work / "seed.pt")
    seed_s = time.perf_counter() - start
    slab_s = []
    for i in range(plan.n_slabs):
        t0 = time.perf_counter()
        parent = plan.chain_parent(i) if cfg.schedule == "chain" else None
        init = work / ("seed.pt" if parent is None else f"slab_{parent}.pt")
        fit_slab.run_slab(tilt_series_path=ts, plan_path=work / "plan.json", init_model=init,
                          seed_meta=work / "seed.json", slab=i, dataset=row, cfg=cfg,
                          out_tiles=work / f"slab_{i}.zarr", out_model=work / f"slab_{i}.pt")
        slab_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    stitch_tiles.run(tile_stores=[work / f"slab_{i}.zarr" for i in range(plan.n_slabs)],
                     meta_paths=[work / f"slab_{i}.json" for i in range(plan.n_slabs)], out=work / "cn.mrc",
                     out_zarr=work / "cn.zarr", threads=1, cfg=StitchConfig())
    stitch_s = time.perf_counter() - t0
    volume = read_mrc(work / "cn.mrc").data
    steps = cfg.seed_iterations + plan.n_slabs * cfg.slab_iterations
    row_steps = (cfg.seed_iterations * (cfg.rows_per_step or plan.height_px)
                 + plan.n_slabs * cfg.slab_iterations * (cfg.slab_fit_rows_per_step or plan.window_px))
    return volume, {"boundaries_y": list(plan.boundaries_y), "n_slabs": plan.n_slabs, "steps": steps,
                    "row_steps": row_steps,
                    "critical_path_s": seed_s + (max(slab_s) if cfg.schedule == "seed" else sum(slab_s)) + stitch_s,
                    "compute_s": seed_s + sum(slab_s) + stitch_s}


def run_wbp(folder: Path, row: DatasetRow, cfg: WbpConfig | None = None) -> tuple[np.ndarray, float]:
    """The WBP baseline of the case; returns the volume and its wall time."""
    start = time.perf_counter()
    reconstruct_wbp.run(tilt_series_path=folder / "ts.mrc", angles_path=folder / "ts.tlt", dataset=row,
                        cfg=cfg or WbpConfig(), out=folder / "wbp.mrc", reference_volume_path=folder / "gt.mrc")
    return read_mrc(folder / "wbp.mrc").data, time.perf_counter() - start


def score(volume: np.ndarray, truth: np.ndarray, *, angles_deg, boundaries_y: Sequence[int] = ()) -> dict:
    """The evaluate stage's metrics (both papers' and ours) and the seam ratios at ``boundaries_y``."""
    scores = scored_metrics(volume, truth)
    fsc = fsc_metrics(volume, truth, angles_deg=angles_deg, voxel_size_angstrom=1.0)  # means do not need Å
    return {**{k: scores[k] for k in ("psnr_db", "psnr_paper_db", "ssim", "ssim_global")},
            "psnr_cn_paper_db": psnr_cn_paper_db(volume, truth), "ssim_cn_paper": ssim_cn_paper(volume, truth),
            "dfsc_measured_mean": fsc["dfsc_measured_mean"], "dfsc_missing_mean": fsc["dfsc_missing_mean"],
            "seam_ratio": seam_ratio(row_step_means(volume), boundaries_y) if boundaries_y else math.nan,
            "seam_ratio_gt": seam_ratio(row_step_means(truth), boundaries_y) if boundaries_y else math.nan}


def error_seam_ratio(volume: np.ndarray, truth: np.ndarray, boundaries_y: Sequence[int]) -> float:
    """Seam ratio of the error field (``volume`` affinely fitted to ``truth``, minus ``truth``) at ``boundaries_y``.

    ≈ 1 when the error is as rough across the seams as between any other rows. It holds where noise
    dominates the error (the maps' WBP); content still shows through where it does not (the hollow
    sphere's WBP, smooth CN fits): bench ``seam_calibration`` measures how well it tells seams apart.
    """
    scale, offset = fit_affine_to_reference(volume, truth)
    error = np.asarray(volume, np.float64) * scale + offset - np.asarray(truth, np.float64)
    return seam_ratio(row_step_means(error), boundaries_y)


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"m ± s"`` over the finite values (sample sd; ``m`` alone for one value, ``—`` for none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return "—"
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f}"
    return f"{statistics.mean(finite):.{digits}f} ± {statistics.stdev(finite):.{digits}f}"
