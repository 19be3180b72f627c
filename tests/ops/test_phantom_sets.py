"""The CN paper's spheres and shapes sets: many objects, sizes scaled from the paper, seeded, smoothed."""

import numpy as np
import pytest
from scipy import ndimage

from cryo_pipeline.ops.phantom_sets import make_phantom_set, paper_diameter_range_px, spheres_set


def test_diameters_scale_from_the_papers_16_to_64_px_at_depth_256():
    assert paper_diameter_range_px(256) == (16.0, 64.0)
    assert paper_diameter_range_px(128) == (8.0, 32.0)
    assert paper_diameter_range_px(48) == (6.0, 12.0)  # floor of 6 px keeps the smallest shell hollow


def test_spheres_set_holds_many_hollow_spheres_in_range():
    binary = spheres_set((48, 64, 64), seed=3, lowpass_sigma_px=0.0)
    assert set(np.unique(binary)) == {0.0, 1.0}
    labels, n = ndimage.label(binary > 0.5)
    assert n >= 10  # many objects, not one
    filled = ndimage.binary_fill_holes(binary > 0.5)
    assert filled.sum() > 1.3 * binary.sum()  # shells: filling the holes adds the insides
    for box in ndimage.find_objects(labels):
        extent = max(s.stop - s.start for s in box)
        assert 6 - 1 <= extent <= 12 + 1


def test_sets_are_seeded_smoothed_and_in_unit_range():
    for name in ("spheres_set", "shapes_set"):
        a = make_phantom_set(name, shape_zyx=(32, 48, 48), seed=1)
        assert a.shape == (32, 48, 48) and a.dtype == np.float32
        assert np.array_equal(a, make_phantom_set(name, shape_zyx=(32, 48, 48), seed=1))
        assert not np.array_equal(a, make_phantom_set(name, shape_zyx=(32, 48, 48), seed=2))
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert 0 < np.mean((a > 0.05) & (a < 0.95))  # the low-pass left soft edges
        assert 0.01 < a.mean() < 0.2


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="unknown phantom set"):
        make_phantom_set("spheres")
    with pytest.raises(ValueError, match="do not fit"):
        spheres_set((16, 16, 16), diameter_range_px=(6, 30))
