"""Working, held-out and reference tilts; alternating halves."""

import numpy as np
import pytest

from cryo_pipeline.ops.tilts import (
    alternate_halves,
    heldout_tilts,
    tilts_in_range,
)

NEEDLE = np.arange(-76.0, 76.5, 2.0)  # the real STEM series' angles


def test_heldout_tilts_are_the_reference_minus_the_working_range():
    held = heldout_tilts(NEEDLE, working_range_deg=(-60, 60), reference_range_deg=(-76, 76))
    np.testing.assert_array_equal(NEEDLE[held], np.r_[np.arange(-76.0, -61, 2), np.arange(62.0, 77, 2)])
    assert tilts_in_range(NEEDLE, tilt_min_deg=-60, tilt_max_deg=60).size == 61
    assert tilts_in_range(NEEDLE, tilt_min_deg=-59.995, tilt_max_deg=60).size == 61  # 0.01 deg tolerance


def test_reference_range_must_contain_the_working_range():
    with pytest.raises(ValueError, match=r"reference range \[-50, 76\] deg does not contain"):
        heldout_tilts(NEEDLE, working_range_deg=(-60, 60), reference_range_deg=(-50, 76))


def test_alternate_halves_follow_the_angle_order_not_the_file_order():
    angles = np.array([0.0, 3.0, -3.0, 6.0, -6.0, 9.0, -9.0])  # dose-symmetric file order
    even, odd = alternate_halves(angles)
    np.testing.assert_array_equal(np.sort(angles[even]), [-9.0, -3.0, 3.0, 9.0])
    np.testing.assert_array_equal(np.sort(angles[odd]), [-6.0, 0.0, 6.0])
    assert set(even) | set(odd) == set(range(7)) and not set(even) & set(odd)
    assert np.all(np.diff(even) > 0)

