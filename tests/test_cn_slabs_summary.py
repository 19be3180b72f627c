"""bench cn_slabs' summary: the comparator is the best one-network arm, the bound is checked against it."""

import math

import pytest

from bench.cn_runs import SCORE_KEYS
from bench.cn_slabs import arm_configs, summarise
from cryo_pipeline.config.stages import CnConfig


def _row(arm, seed, psnr, ssim, missing):
    row = {key: 0.5 for key in SCORE_KEYS}
    row.update(case="shapes", arm=arm, seed=seed, steps=1, row_steps=1, critical_path_s=1.0, compute_s=1.0,
               psnr_db=psnr, psnr_cn_paper_db=psnr, ssim=ssim, dfsc_missing_mean=missing)
    return row


def test_the_comparator_is_the_one_network_arm_of_highest_mean_psnr_and_slabs_are_held_to_it():
    rows = []
    for seed, shift in enumerate((0.0, 0.2, -0.2)):
        rows += [_row("one network, 2 rows/step", seed, 30.0 + shift, 0.95, 0.60),
                 _row("one network, 1 rows/step", seed, 31.0 + shift, 0.96, 0.70),
                 _row("2 slabs, 1 row/step", seed, 30.9 + shift, 0.958, 0.70),  # -0.1 dB: inside
                 _row("4 slabs, 1 row/step", seed, 30.5 + shift, 0.96, 0.70)]   # -0.5 dB: outside
    table = {r["arm"]: r for r in summarise(rows)}
    assert table["one network, 1 rows/step"]["comparator"] == "yes"
    assert table["one network, 2 rows/step"]["comparator"] == ""
    assert table["one network, 2 rows/step"]["within_bound"] == "—"  # not a slab arm
    assert table["one network, 2 rows/step"]["d_psnr_db"] == "-1.00 ± 0.00"
    assert table["2 slabs, 1 row/step"]["d_psnr_db"] == "-0.10 ± 0.00"
    assert table["2 slabs, 1 row/step"]["within_bound"] is True
    assert table["4 slabs, 1 row/step"]["within_bound"] is False


def test_arms_see_the_same_rows_after_the_seed():
    base = CnConfig(width=16, n_hidden_layers=2, seed_iterations=200, slab_iterations=100, rows_per_step=8)
    arms = arm_configs(base, slab_counts=(2, 4), height_px=48)
    budget = 4 * 100 * 8
    for name, cfg in arms.items():
        n_slabs = 1 if cfg.slab_px == "all" else math.ceil(48 / cfg.slab_px)
        assert n_slabs * cfg.slab_iterations * cfg.slab_fit_rows_per_step == pytest.approx(budget), name
