"""The CN slab plan (⌈H/t⌉ windows of t + 2h rows) and the seam ratio."""

import math

import numpy as np
import pytest

from cryo_pipeline.ops.slabs import plan_slabs, seam_ratio, slab_rows_from_ratio


VALID = [(h, t, o) for h in (16, 31, 32, 33, 64, 100, 257) for t, o in ((8, 0), (8, 2), (8, 3), (5, 1), (16, 4))
         if t + 2 * o <= h]


@pytest.mark.parametrize("height, slab, halo", VALID)
def test_plan_has_ceil_h_over_t_full_windows_covering_every_row(height, slab, halo):
    plan = plan_slabs(height, slab_px=slab, halo_px=halo)
    assert plan.n_slabs == math.ceil(height / slab)
    assert plan.window_px == slab + 2 * halo
    origins = np.asarray(plan.origins_y)
    assert origins[0] == 0 and origins[-1] + plan.window_px == height  # flush with both ends
    assert np.all(np.diff(origins) > 0)  # distinct, increasing windows
    # neighbours overlap by at least the blending ramp 2h, so every seam is blended
    assert np.all(origins[:-1] + plan.window_px - origins[1:] >= 2 * halo)
    covered = np.zeros(height, dtype=int)
    for i in range(plan.n_slabs):
        start, stop = plan.window(i)
        covered[start:stop] += 1
    assert covered.min() >= 1
    # seams: one per neighbour pair, inside both windows
    assert len(plan.boundaries_y) == plan.n_slabs - 1
    for i, b in enumerate(plan.boundaries_y):
        assert plan.origins_y[i + 1] <= b <= plan.origins_y[i] + plan.window_px


def test_without_halo_and_divisible_height_the_windows_are_the_slabs():
    plan = plan_slabs(32, slab_px=8, halo_px=0)
    assert plan.origins_y == (0, 8, 16, 24) and plan.boundaries_y == (8, 16, 24)
    assert plan.blend_overlap_px == 0


def test_seed_and_chain_order():
    plan = plan_slabs(40, slab_px=8, halo_px=2)
    assert plan.seed_index() == 2
    assert [plan.chain_parent(i) for i in range(5)] == [1, 2, None, 2, 3]


@pytest.mark.parametrize("height, slab, halo, message", [
    (32, 40, 0, "slab thickness 40 rows is larger than the volume height 32"),
    (32, 8, 8, r"halo \(8 rows\) must be smaller than the slab thickness \(8 rows\)"),
    (32, 8, 9, r"halo \(9 rows\) must be smaller"),
    (32, 0, 0, "slab thickness must be >= 1"),
    (32, 8, -1, "halo must be >= 0"),
    (20, 16, 4, r"slab 16 \+ 2 x halo 4 = 24 rows is taller than the volume \(20 rows\)"),
    (12, 8, 2, "2 slab windows of 12 rows .* do not fit apart in 12 rows"),
])
def test_bad_plans_are_clear_errors(height, slab, halo, message):
    with pytest.raises(ValueError, match=message):
        plan_slabs(height, slab_px=slab, halo_px=halo)


def test_paper_ratio_gives_the_papers_slab():
    # CN paper §3.4: 4 x 256^2 = 262 144 parameters, 1024 x 1024 x 256 tomogram, ratio 1/8 -> 8-row slabs
    assert slab_rows_from_ratio(262_144, depth_px=256, width_px=1024, ratio=1 / 8, height_px=1024) == 8
    assert slab_rows_from_ratio(10, depth_px=256, width_px=1024, ratio=1 / 8, height_px=64) == 1  # clipped
    assert slab_rows_from_ratio(10**9, depth_px=8, width_px=8, ratio=1 / 8, height_px=64) == 64
    with pytest.raises(ValueError):
        slab_rows_from_ratio(100, depth_px=8, width_px=8, ratio=0.0, height_px=8)


def test_seam_ratio_of_a_known_step_pattern():
    # rows differ by 1 everywhere except the seam pairs (b-1, b), which differ by 3
    steps = np.ones(31)
    boundaries = (8, 16, 24)
    for b in boundaries:
        steps[b - 1] = 3.0
    assert seam_ratio(steps, boundaries) == pytest.approx(3.0)
    assert seam_ratio(np.ones(31), boundaries) == pytest.approx(1.0)
    assert math.isnan(seam_ratio(np.ones(31), ()))  # one slab: no seam
