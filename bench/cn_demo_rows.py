"""Benchmark "cn_demo_rows": the demo's own CN at 8 rows per step against 1-row steps, same rows seen.

``cn_slabs`` and ``cn_real_maps`` found slab fits at 1 row per step better than at 8 at the
benchmarks' CPU scale (SIREN 3 × 64). Before that becomes the demo's default it has to hold at
the demo's scale: the ``cn`` section of ``config/config.yaml`` as shipped (SIREN 3 × 128,
16-row slabs, seed 300 steps on 8 rows) on the demo's case (48 × 64 × 64 mixed shapes, ±60°
every 2°, SNR 10, independent projector), seeds 0–2. Arms: slabs of 150 steps on 8 rows
(the shipped demo), one network continuing the same seed on the whole height for the four
slabs' 600 steps of 8 rows (``cn.slab_px: all``: issue 14's slabs-vs-one-network comparison at
the demo's scale), slabs of 1200 steps on 1 row (``cn.slab_rows_per_step: 1``): the same rows;
and ``cn_slabs``' half-seed schedule (half of all the rows, 3600, in a seed of 1-row steps,
then 900 1-row steps per slab): the same rows in total.
``--quick``: one seed, a tiny network and few steps (a smoke test, not a measurement).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.cn_runs import (QUICK_SCALE, budget_row_steps, demo_cn_config, half_seed_schedule, mean_sd, run_cn, score,
                           simulate_case)
from bench.harness import BenchResult, register
from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.ops.slabs import plan_slabs

SHAPE_ZYX = (48, 64, 64)
KEYS = ("psnr_db", "ssim", "dfsc_missing_mean", "seam_ratio", "seam_ratio_gt")


def arm_configs(base, *, height_px: int = SHAPE_ZYX[1]) -> dict[str, object]:
    """``{"8 rows/step": …, "one network, 8 rows/step": …, "1 row/step": …, "half seed, 1 row/step": …}``.

    All see the same rows. The first three share the demo's seed: the shipped slabs, one network
    on the whole height continuing the seed for all the slabs' steps (``slab_px: all``; issue 14's
    comparison at the demo's scale), and the slabs in 1-row steps; the last (``cn_slabs``'
    half-seed schedule) puts half of all the rows (seed included) into a seed of 1-row steps on
    the whole height and gives each of the plan's slabs ``1 / N`` of the other half, in 1-row steps.
    """
    rows = base.slab_iterations * base.rows_per_step
    n_slabs = plan_slabs(height_px, slab_px=base.slab_px, halo_px=base.halo_px).n_slabs
    total = budget_row_steps(base, n_slabs=n_slabs, height_px=height_px)
    return {f"{base.rows_per_step} rows/step": base.model_copy(update={"slab_rows_per_step": None}),
            f"one network, {base.rows_per_step} rows/step": base.model_copy(update={
                "slab_rows_per_step": None, "slab_px": "all", "slab_iterations": n_slabs * base.slab_iterations}),
            "1 row/step": base.model_copy(update={"slab_rows_per_step": 1, "slab_iterations": rows}),
            "half seed, 1 row/step": half_seed_schedule(base, n_slabs=n_slabs, total_row_steps=total)}


def measure(*, seeds=(0, 1, 2), base=None, shape_zyx=SHAPE_ZYX, progress=print) -> list[dict]:
    """One row per (seed, arm)."""
    base = base or demo_cn_config(slab_rows_per_step=None)
    angles = np.arange(-60.0, 60.01, 2.0)
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="cn_demo_rows_") as tmp:
            folder = Path(tmp)
            case = simulate_case(folder, source="mixed_shapes", seed=seed, snr=10.0, shape_zyx=shape_zyx)
            truth = read_mrc(folder / "gt.mrc").data
            for arm, cfg in arm_configs(base, height_px=shape_zyx[1]).items():
                volume, record = run_cn(folder, case, cfg.model_copy(update={"seed": seed}))
                scores = score(volume, truth, angles_deg=angles, boundaries_y=record["boundaries_y"])
                rows.append({"seed": seed, "arm": arm, "row_steps": record["row_steps"],
                             "critical_path_s": record["critical_path_s"], **{k: scores[k] for k in KEYS}})
                progress(f"seed {seed} {arm}: " + ", ".join(f"{k} {rows[-1][k]:.4g}" for k in KEYS))
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean ± sd per arm and the paired difference to the first arm (the shipped demo)."""
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    first = {r["seed"]: r for r in rows if r["arm"] == arms[0]}
    out = []
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        entry = {"arm": arm, "seeds": len(mine), "row_steps": mine[0]["row_steps"]}
        entry.update({k: mean_sd([r[k] for r in mine], 2 if "psnr" in k else 3) for k in KEYS})
        entry["critical_path_s"] = mean_sd([r["critical_path_s"] for r in mine], 1)
        for key, digits in (("psnr_db", 2), ("ssim", 4), ("dfsc_missing_mean", 3)):
            entry[f"d_{key}_vs_demo"] = "—" if arm == arms[0] else mean_sd(
                [r[key] - first[r["seed"]][key] for r in mine], digits)
        out.append(entry)
    return out


@register("cn_demo_rows")
def run(*, quick: bool = False) -> BenchResult:
    """The demo's CN slab fits at 8 vs 1 rows per step on the demo's mixed-shapes case, 3 seeds."""
    torch.set_num_threads(1)
    base = demo_cn_config(slab_rows_per_step=None)
    if quick:
        base = base.model_copy(update=QUICK_SCALE)
        rows = measure(seeds=(0,), base=base, shape_zyx=(32, 32, 32))
    else:
        rows = measure(base=base)
    notes = ["same rows seen by every arm, seed included; the first two arms share the demo's seed; critical path = seed + slowest slab + stitch, "
             "single-threaded torch",
             f"base cn config (the demo's): {base.model_dump(mode='json')}"]
    return BenchResult(name="cn_demo_rows", params={"quick": quick, "shape_zyx": list(SHAPE_ZYX), "snr": 10,
                                                     "tilts": "-60:2:60", "per_seed": rows},
                       rows=summarise(rows), notes=notes)
