"""Benchmark "cn_inverse_crime": how much simulating with the fitting projector flatters CN and WBP.

The same ground truths (mixed shapes noiseless and at SNR 10, the hollow sphere at SNR
10; 48 × 64 × 64, ±60° every 2°) are projected twice: with ``project.projector: footprint`` (the
sparse footprint matrix that CN fits through and WBP back-projects: the inverse crime) and
with ``supersampled`` (bicubic rays, 2× supersampled and binned: independent, the
default). CN (the demo's ``cn`` config) and WBP reconstruct both; the table gives each
score and the difference footprint − supersampled (how much the crime flatters). One seed
per case: the issue asks for the size of the effect once.
``--quick``: one case, noiseless, a tiny network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.cn_runs import CPU_SCALE, QUICK_SCALE, demo_cn_config, run_cn, run_wbp, score, simulate_case
from bench.harness import BenchResult, register
from cryo_pipeline.io.mrc import read_mrc

CASES = (("shapes", "mixed_shapes", None), ("shapes", "mixed_shapes", 10.0), ("sphere", "hollow_sphere", 10.0))
KEYS = ("psnr_db", "psnr_cn_paper_db", "ssim", "ssim_global", "dfsc_measured_mean", "dfsc_missing_mean")


def measure(*, cases=CASES, seed=0, shape_zyx=(48, 64, 64), cfg=None, progress=print):
    """Rows per (case, snr, method) with the scores under both projectors and their difference."""
    cfg = (cfg or demo_cn_config(**CPU_SCALE)).model_copy(update={"seed": seed})
    angles = np.arange(-60.0, 60.01, 2.0)
    rows = []
    for case, source, snr in cases:
        scores = {}
        for projector in ("footprint", "supersampled"):
            with tempfile.TemporaryDirectory(prefix="cn_crime_") as tmp:
                folder = Path(tmp)
                row = simulate_case(folder, source=source, seed=seed, snr=snr, shape_zyx=shape_zyx,
                                    projector=projector)
                truth = read_mrc(folder / "gt.mrc").data
                cn, _ = run_cn(folder, row, cfg)
                wbp, _ = run_wbp(folder, row)
                for method, volume in (("wbp", wbp), ("cn", cn)):
                    scores[method, projector] = score(volume, truth, angles_deg=angles)
                    progress(f"{case} snr {snr} {projector} {method}: psnr {scores[method, projector]['psnr_db']:.2f}")
        for method in ("wbp", "cn"):
            entry = {"case": case, "snr": "none" if snr is None else snr, "method": method}
            for key in KEYS:
                crime, clean = scores[method, "footprint"][key], scores[method, "supersampled"][key]
                entry[f"{key}_footprint"] = round(crime, 4)
                entry[f"{key}_supersampled"] = round(clean, 4)
                entry[f"{key}_flattery"] = round(crime - clean, 4)
            rows.append(entry)
    return rows


@register("cn_inverse_crime")
def run(*, quick: bool = False) -> BenchResult:
    """CN and WBP on tilt series simulated with the fitting projector vs an independent one (1 seed)."""
    torch.set_num_threads(1)
    if quick:
        cfg = demo_cn_config(**QUICK_SCALE)
        rows = measure(cases=CASES[:1], shape_zyx=(32, 32, 32), cfg=cfg)
    else:
        cfg = demo_cn_config(**CPU_SCALE)
        rows = measure(cfg=cfg)
    notes = ["*_flattery = score with the footprint projector (inverse crime) - score with the independent "
             "supersampled projector; one seed (phantom, noise and network seed 0)",
             f"cn config: {cfg.model_dump(mode='json')}",
             "machine shared with other jobs while measuring; single-threaded torch"]
    return BenchResult(name="cn_inverse_crime", params={"quick": quick, "tilts": "-60:2:60", "seed": 0},
                       rows=rows, notes=notes)
