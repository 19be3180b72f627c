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
        rows += [_row("one network, half seed", seed, 30.0 + shift, 0.95, 0.60),
                 _row("one network, short seed", seed, 31.0 + shift, 0.96, 0.70),
                 _row("2 slabs, short seed", seed, 30.9 + shift, 0.958, 0.70),  # -0.1 dB: inside
                 _row("4 slabs, short seed", seed, 30.5 + shift, 0.96, 0.70),   # -0.5 dB: outside
                 _row("4 slabs, half seed", seed, 30.2 + shift, 0.951, 0.61)]   # -0.8 dB; +0.2 dB on its schedule
    table = {r["arm"]: r for r in summarise(rows)}
    assert table["one network, short seed"]["comparator"] == "yes"
    assert table["one network, half seed"]["comparator"] == ""
    assert table["one network, half seed"]["within_bound"] == "—"  # not a slab arm
    assert table["one network, half seed"]["d_psnr_db"] == "-1.00 ± 0.00"
    assert table["2 slabs, short seed"]["d_psnr_db"] == "-0.10 ± 0.00"
    assert table["2 slabs, short seed"]["within_bound"] is True
    assert table["4 slabs, short seed"]["within_bound"] is False
    # against the one network on its own schedule
    assert table["2 slabs, short seed"]["d_psnr_db_same"] == "-0.10 ± 0.00"
    assert table["4 slabs, half seed"]["d_psnr_db"] == "-0.80 ± 0.00"
    assert table["4 slabs, half seed"]["within_bound"] is False
    assert table["4 slabs, half seed"]["d_psnr_db_same"] == "0.20 ± 0.00"
    assert table["4 slabs, half seed"]["d_ssim_same"] == "0.0010 ± 0.0000"
    assert table["4 slabs, half seed"]["within_bound_same"] is True
    assert "within_bound_same" not in table["one network, half seed"]


def test_every_arm_sees_the_same_rows_seed_included_and_slabs_split_what_follows_the_seed():
    base = CnConfig(width=16, n_hidden_layers=2, seed_iterations=200, slab_iterations=100, rows_per_step=8)
    arms = arm_configs(base, slab_counts=(2, 4), height_px=48)
    assert list(arms) == ["one network, short seed", "2 slabs, short seed", "4 slabs, short seed",
                          "one network, half seed", "2 slabs, half seed", "4 slabs, half seed"]
    total = 200 * 8 + 4 * 100 * 8
    for name, cfg in arms.items():
        n_slabs = 1 if cfg.slab_px == "all" else math.ceil(48 / cfg.slab_px)
        seed_rows = cfg.seed_iterations * cfg.rows_per_step
        assert seed_rows + n_slabs * cfg.slab_iterations * cfg.slab_fit_rows_per_step == pytest.approx(total), name
        assert seed_rows == (200 * 8 if name.endswith("short seed") else total // 2), name
        assert cfg.slab_fit_rows_per_step == 1, name
    assert arms["one network, half seed"].rows_per_step == 1  # the long seed steps one row at a time too
