"""bench cn_real_maps scores ``+ keep_measured`` on the stitched volume: that must equal the workflow's
``cn.keep_measured: true`` (the WBP's measured planes put into every slab before the blend)."""

import numpy as np
import torch

from bench.cn_real_maps import arm_configs, keep_measured_of
from bench.cn_runs import CPU_SCALE, QUICK_SCALE, demo_cn_config, run_cn, simulate_case
from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.ops.fsc import measured_region_mask_3d


def test_keep_measured_on_the_stitched_volume_equals_keep_measured_in_every_slab(tmp_path):
    torch.set_num_threads(1)
    row = simulate_case(tmp_path, source="mixed_shapes", seed=0, snr=10.0, shape_zyx=(20, 24, 24))
    cfg = demo_cn_config(**QUICK_SCALE).model_copy(update={"slab_px": 8, "halo_px": 2, "nonnegative": False})
    plain, record = run_cn(tmp_path, row, cfg)
    in_slabs, _ = run_cn(tmp_path, row, cfg.model_copy(update={"keep_measured": True}))
    assert record["n_slabs"] == 3  # the blend of consistent slabs is what is being compared
    angles = np.loadtxt(tmp_path / "ts.tlt")
    after = keep_measured_of(plain, read_mrc(tmp_path / "ts.mrc").data, angles)
    scale = float(np.abs(in_slabs).max())
    assert np.abs(after - in_slabs).max() <= 1e-4 * scale
    # and it did something: the measured planes changed, the rest of the spectrum did not
    mask = measured_region_mask_3d((20, 1, 24), angles)
    change = np.abs(np.fft.fft2(after - plain, axes=(0, 2)))
    assert change[np.broadcast_to(mask, change.shape)].max() > 1e-2 * scale
    assert change[~np.broadcast_to(mask, change.shape)].max() <= 1e-3 * scale


def test_every_cn_arm_sees_the_demo_slabs_rows_after_the_seed():
    base = demo_cn_config(**{**CPU_SCALE, "seed_iterations": 10})  # 100 slab steps of 8 rows
    for height, n_slabs in ((50, 4), (65, 5)):  # beta-gal binned, 70S; demo slab_px 16
        for name, cfg in arm_configs(base, height_px=height).items():
            rows = cfg.slab_iterations * (cfg.slab_fit_rows_per_step or height)
            slabs = 1 if cfg.slab_px == "all" else n_slabs
            assert rows * slabs == n_slabs * 100 * base.rows_per_step, name
