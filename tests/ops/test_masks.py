"""IsoNet-style density masks (cryo_pipeline.ops.masks): coverage of known density,
kept fractions, z_crop, contrast detection and shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryo_pipeline.ops.masks import density_mask_3d, mask_fraction, resolve_density_contrast


def _blobs(shape=(48, 96, 96), *, n=40, sign=-1.0, noise=0.5, seed=0):
    """Spheres of density ``sign`` (dark: -1) on Gaussian noise; returns (volume, truth)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    truth = np.zeros(shape, dtype=bool)
    for _ in range(n):
        c = [rng.uniform(8, s - 8) for s in shape]
        r = rng.uniform(4, 7)
        truth |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
    volume = sign * truth.astype(np.float32) + noise * rng.standard_normal(shape).astype(np.float32)
    return volume, truth


@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["dark", "bright"])
def test_mask_covers_the_blobs_with_auto_contrast(sign):
    volume, truth = _blobs(sign=sign)
    assert 0.05 < truth.mean() < 0.2
    mask = density_mask_3d(volume)
    assert mask.dtype == np.uint8 and mask.shape == volume.shape
    assert set(np.unique(mask)) <= {0, 1}
    recall = np.count_nonzero(mask[truth]) / truth.sum()
    assert recall > 0.9
    # two 50 % masks intersected: at most half of the voxels, and well more than the blobs
    assert 1.5 * truth.mean() < mask_fraction(mask) <= 0.5 + 0.02


def test_wrong_contrast_misses_the_blobs():
    volume, truth = _blobs(sign=-1.0)
    right = density_mask_3d(volume, density_contrast="dark")
    wrong = density_mask_3d(volume, density_contrast="bright")
    np.testing.assert_array_equal(right, density_mask_3d(volume))  # auto picked dark
    assert np.count_nonzero(wrong[truth]) / truth.sum() < 0.5


@pytest.mark.parametrize(("density", "std", "expected"), [(30.0, 100.0, 0.30), (50.0, 100.0, 0.50),
                                                          (100.0, 30.0, 0.30), (100.0, 50.0, 0.50)])
def test_single_mask_keeps_the_requested_fraction(density, std, expected):
    # std 100 keeps all but the minimum; density 100 (> 99.8) skips the density mask
    volume, _ = _blobs()
    assert mask_fraction(density_mask_3d(volume, density_percentage=density, std_percentage=std)) == pytest.approx(
        expected, abs=0.02)


def test_intersection_is_no_larger_than_either_mask():
    volume, _ = _blobs()
    both = density_mask_3d(volume, density_percentage=40, std_percentage=60)
    dens = density_mask_3d(volume, density_percentage=40, std_percentage=100)
    std = density_mask_3d(volume, density_percentage=100, std_percentage=60)
    assert not np.any(both & ~dens) and not np.any(both & ~std)
    assert mask_fraction(both) <= 0.4 + 0.02


@pytest.mark.parametrize(("depth", "z_crop"), [(48, 0.2), (37, 0.2), (100, 0.29), (41, 0.1), (30, 0.0)])
def test_z_crop_removes_floor_of_z_crop_times_depth_at_each_end(depth, z_crop):
    volume, _ = _blobs((depth, 40, 36), n=10)
    full = density_mask_3d(volume, density_percentage=100, std_percentage=100)
    cropped = density_mask_3d(volume, density_percentage=100, std_percentage=100, z_crop=z_crop)
    k = {0.2: depth // 5, 0.29: 29, 0.1: depth // 10, 0.0: 0}[z_crop]  # exact ⌊z_crop·Z⌋
    assert k == math.floor(round(z_crop * depth, 9))
    assert not cropped[:k].any() and not cropped[depth - k:].any()
    np.testing.assert_array_equal(cropped[k:depth - k], full[k:depth - k])
    assert cropped[k].any() and cropped[depth - k - 1].any()


@pytest.mark.parametrize("shape", [(37, 51, 45), (9, 10, 11), (2, 3, 5)])
def test_output_shape_equals_input_for_odd_shapes(shape):
    volume = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    mask = density_mask_3d(volume, patch_size_px=2)
    assert mask.shape == shape and mask.dtype == np.uint8


def test_downsampling_grid_is_aligned():
    # a dark cube on the full grid must come back on the same voxels (nearest ×2 undoes the 2×2×2 blocks)
    volume = np.zeros((32, 33, 34), dtype=np.float32)
    volume[8:16, 10:18, 12:20] = -1.0
    volume += 0.01 * np.random.default_rng(2).standard_normal(volume.shape).astype(np.float32)
    mask = density_mask_3d(volume, patch_size_px=1, density_percentage=100, std_percentage=3)
    zs, ys, xs = np.nonzero(mask)
    assert 4 <= zs.min() and zs.max() <= 19 and 6 <= ys.min() and ys.max() <= 21


def test_resolve_density_contrast():
    volume, _ = _blobs(sign=-1.0)
    assert resolve_density_contrast(volume) == "dark"
    assert resolve_density_contrast(-volume) == "bright"
    assert resolve_density_contrast(np.zeros((4, 4, 4))) == "dark"  # a tie counts as raw cryo-ET
    big = np.zeros((300, 300, 200), dtype=np.float32)  # > 2**24 voxels: judged on a stride
    big[::7, ::5, ::3] = 5.0
    assert resolve_density_contrast(big) == "bright"
    with pytest.raises(ValueError, match="empty"):
        resolve_density_contrast(np.zeros((0, 4, 4)))


def test_mask_fraction():
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    assert mask_fraction(mask) == 0.0
    mask[0, :2] = 1
    assert mask_fraction(mask) == pytest.approx(12 / 120)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"patch_size_px": 0}, "patch_size_px"),
    ({"density_percentage": 0.0}, "density_percentage"),
    ({"std_percentage": 101.0}, "std_percentage"),
    ({"z_crop": 0.5}, "z_crop"),
    ({"density_contrast": "light"}, "density_contrast"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        density_mask_3d(np.zeros((8, 8, 8), dtype=np.float32), **kwargs)
    with pytest.raises(ValueError, match="3D"):
        density_mask_3d(np.zeros((8, 8)))
