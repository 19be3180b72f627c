"""bench cn_demo_rows compares the demo's slab fits with 1-row steps over the same rows."""

from bench.cn_demo_rows import arm_configs, summarise
from bench.cn_runs import demo_cn_config


def test_the_arms_see_the_demo_slabs_rows_and_only_rows_per_step_differs_after_the_shared_seed():
    base = demo_cn_config(slab_rows_per_step=None)
    arms = arm_configs(base)
    assert list(arms) == [f"{base.rows_per_step} rows/step", f"one network, {base.rows_per_step} rows/step",
                          "1 row/step", "half seed, 1 row/step"]
    seen = {name: cfg.slab_iterations * cfg.slab_fit_rows_per_step for name, cfg in arms.items()}
    assert seen[f"{base.rows_per_step} rows/step"] == seen["1 row/step"] == base.slab_iterations * base.rows_per_step
    shipped, one_network, one_row, half_seed = arms.values()
    n_slabs = 4  # the demo plan on 64 rows: 16-row slabs
    assert one_network.slab_px == "all" and one_network.seed_iterations == base.seed_iterations
    assert seen[f"one network, {base.rows_per_step} rows/step"] == n_slabs * seen[f"{base.rows_per_step} rows/step"]
    total = base.seed_iterations * base.rows_per_step + n_slabs * base.slab_iterations * base.rows_per_step
    assert half_seed.seed_iterations * half_seed.rows_per_step == total // 2
    assert n_slabs * half_seed.slab_iterations * half_seed.slab_fit_rows_per_step == total // 2
    assert shipped == base
    assert one_row.model_copy(update={"slab_rows_per_step": None, "slab_iterations": base.slab_iterations}) == base


def test_the_paired_difference_is_against_the_shipped_demo():
    keys = dict(ssim=0.9, dfsc_missing_mean=0.7, seam_ratio=1.0, seam_ratio_gt=1.0, row_steps=1, critical_path_s=1)
    rows = [dict(seed=s, arm=a, psnr_db=p, **keys)
            for s, (p8, p1) in enumerate(((31.0, 28.0), (33.0, 30.5), (34.0, 30.0)))
            for a, p in (("8 rows/step", p8), ("1 row/step", p1))]
    table = {r["arm"]: r for r in summarise(rows)}
    assert table["8 rows/step"]["d_psnr_db_vs_demo"] == "—"
    assert table["1 row/step"]["d_psnr_db_vs_demo"] == "-3.17 ± 0.76"
    assert table["8 rows/step"]["psnr_db"] == "32.67 ± 1.53"
