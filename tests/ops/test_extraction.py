"""Subtomogram sampling kernels (cryo_pipeline.ops.extraction), checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cryo_pipeline.ops.extraction import (
    crop_cube,
    local_mask_fraction_3d,
    require_cube_fits,
    sample_centres,
    split_train_validation,
    stored_cube_px,
    valid_centre_box,
)


def _brute_fraction(mask: np.ndarray, centre, cube: int) -> float:
    """Mask voxels in the cube [c − cube//2, c − cube//2 + cube) (clipped to the volume) / cube³."""
    sl = tuple(slice(max(0, c - cube // 2), max(0, c - cube // 2 + cube)) for c in centre)
    return np.count_nonzero(mask[sl]) / cube**3


def _random_mask(shape, *, density=0.3, seed=0, blocky=True):
    rng = np.random.default_rng(seed)
    if not blocky:
        return rng.random(shape) < density
    coarse = rng.random(tuple(-(-s // 4) for s in shape)) < density
    return coarse.repeat(4, 0).repeat(4, 1).repeat(4, 2)[: shape[0], : shape[1], : shape[2]]


def _brute_candidates(mask, cube, stored, min_fraction):
    box = valid_centre_box(mask.shape, cube_px=stored)
    out = []
    for c in itertools.product(*(range(lo, hi) for lo, hi in box)):
        if mask[c] and _brute_fraction(mask, c, cube) >= min_fraction:
            out.append(c)
    return np.array(out, dtype=np.int64).reshape(-1, 3)


# --- local fractions, boxes, crops ----------------------------------------------------------
@pytest.mark.parametrize("cube", [1, 2, 3, 4, 5, 6, 11])
def test_local_mask_fraction_equals_brute_force_for_even_and_odd_cubes(cube):
    mask = _random_mask((9, 11, 10), density=0.4, seed=cube, blocky=False)
    got = local_mask_fraction_3d(mask.astype(np.uint8), cube_px=cube)
    expected = np.array([_brute_fraction(mask, c, cube) for c in np.ndindex(mask.shape)]).reshape(mask.shape)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)  # exact: integer counts / cube³


def test_local_mask_fraction_of_a_full_mask_is_one_where_the_cube_fits():
    frac = local_mask_fraction_3d(np.ones((12, 10, 14), dtype=bool), cube_px=4)
    (zl, zh), (yl, yh), (xl, xh) = valid_centre_box(frac.shape, cube_px=4)
    assert np.all(frac[zl:zh, yl:yh, xl:xh] == 1.0)
    assert frac[0, 5, 5] == pytest.approx(2 / 4) and frac[-1, 5, 5] == pytest.approx(3 / 4)  # c − 2 .. c + 1


@pytest.mark.parametrize("cube", [4, 5])
def test_valid_centre_box_is_exactly_where_the_cube_fits(cube):
    shape = (10, 7, 12)
    box = valid_centre_box(shape, cube_px=cube)
    for axis, n in enumerate(shape):
        lo, hi = box[axis]
        fits = [c for c in range(n) if c - cube // 2 >= 0 and c - cube // 2 + cube <= n]
        assert (lo, hi) == (fits[0], fits[-1] + 1)
    assert valid_centre_box((3, 8, 8), cube_px=4)[0][1] <= valid_centre_box((3, 8, 8), cube_px=4)[0][0]


@pytest.mark.parametrize("cube", [4, 5])
def test_crop_cube_is_the_exact_numpy_slice(cube):
    volume = np.arange(10 * 11 * 12, dtype=np.float32).reshape(10, 11, 12)
    for centre in [(2, 2, 2), (5, 6, 7), (7, 8, 9)]:
        c0 = [c - cube // 2 for c in centre]
        expected = volume[c0[0]:c0[0] + cube, c0[1]:c0[1] + cube, c0[2]:c0[2] + cube]
        got = crop_cube(volume, centre, cube)
        assert got.dtype == np.float32 and got.shape == (cube,) * 3
        np.testing.assert_array_equal(got, expected)
        assert not np.shares_memory(got, volume)
    with pytest.raises(ValueError, match="does not fit"):
        crop_cube(volume, (1, 5, 5), cube)
    with pytest.raises(ValueError, match="does not fit"):
        crop_cube(volume, (5, 5, 12 - cube // 2 + cube), cube)


@pytest.mark.parametrize(("cube", "stored"), [(64, 92), (96, 136), (32, 46), (33, 48), (8, 12)])
def test_stored_cube_is_the_even_ceiling_of_sqrt2(cube, stored):
    assert stored_cube_px(cube, enlarge_for_rotation=True) == stored
    assert stored % 2 == 0 and stored >= np.sqrt(2) * cube and stored - 2 < np.sqrt(2) * cube
    assert stored_cube_px(cube, enlarge_for_rotation=False) == cube


# --- random sampling --------------------------------------------------------------------------
def test_random_centres_meet_the_minimum_fraction_by_brute_force():
    mask = _random_mask((24, 30, 28), density=0.35)
    sample = sample_centres(mask, cube_px=8, n=40, seed=3, min_mask_fraction=0.3)
    centres, fractions, info = sample
    assert centres.dtype == np.int64 and centres.shape == (40, 3) and fractions.shape == (40,)
    assert len({tuple(c) for c in centres.tolist()}) == 40  # without replacement
    box = valid_centre_box(mask.shape, cube_px=8)
    for c, f in zip(centres.tolist(), fractions, strict=True):
        assert mask[tuple(c)]
        assert all(lo <= v < hi for v, (lo, hi) in zip(c, box, strict=True))
        assert f == _brute_fraction(mask, c, 8) >= 0.3
    assert centres.tolist() == sorted(centres.tolist())
    assert info["n_selected"] == 40 and not info["took_all"]
    assert info["n_candidates"] == len(_brute_candidates(mask, 8, 8, 0.3))


def test_random_sampling_is_seeded():
    mask = _random_mask((24, 30, 28), density=0.35)
    a = sample_centres(mask, cube_px=8, n=30, seed=7).centres
    b = sample_centres(mask, cube_px=8, n=30, seed=7).centres
    c = sample_centres(mask, cube_px=8, n=30, seed=8).centres
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_draw_is_uniform_over_the_candidates():
    mask = np.zeros((12, 12, 12), dtype=bool)
    mask[4:8, 4:8, 4:8] = True  # 64 candidates with cube 2 (every in-mask centre has fraction >= 1/8)
    hits = np.zeros((12, 12, 12))
    for seed in range(400):
        centres = sample_centres(mask, cube_px=2, n=16, seed=seed, min_mask_fraction=0.1).centres
        assert len(centres) == 16
        hits[tuple(centres.T)] += 1
    rate = hits[mask] / 400  # each candidate is drawn with probability 16/64
    assert np.all(np.abs(rate - 0.25) < 0.1) and abs(rate.mean() - 0.25) < 1e-12


def test_fewer_candidates_than_requested_takes_them_all():
    mask = _random_mask((16, 18, 20), density=0.25, seed=5)
    expected = _brute_candidates(mask, 6, 10, 0.5)
    assert 0 < len(expected) < 10_000
    sample = sample_centres(mask, cube_px=6, n=10_000, seed=0, min_mask_fraction=0.5, stored_px=10)
    np.testing.assert_array_equal(sample.centres, expected)
    assert sample.info["took_all"] and sample.info["n_candidates"] == len(expected)


def test_stored_cube_limits_the_centres_and_core_cube_the_fraction():
    mask = np.ones((20, 20, 20), dtype=bool)
    centres = sample_centres(mask, cube_px=4, n=10_000, seed=0, stored_px=12).centres
    assert centres.min() == 6 and centres.max() == 20 - 12 + 6
    assert len(centres) == 9**3


def test_min_fraction_boundary_is_exact():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[:, :, :3] = True  # a centre at x = 2..4 with cube 4 sees 1..3 of its 4 columns
    sample = sample_centres(mask, cube_px=4, n=1000, seed=0, min_mask_fraction=0.75)
    assert set(sample.centres[:, 2].tolist()) == {2}
    assert np.all(sample.fractions == 0.75)


# --- grid sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [None, 3, 5])
def test_grid_centres_are_the_filtered_regular_grid(stride):
    mask = _random_mask((22, 25, 27), density=0.4, seed=2)
    sample = sample_centres(mask, cube_px=6, n=1, seed=0, sampling="grid", stride_px=stride, min_mask_fraction=0.3)
    step = stride or 6
    box = valid_centre_box(mask.shape, cube_px=6)
    grid = itertools.product(*(range(lo, hi, step) for lo, hi in box))
    expected = [c for c in grid if _brute_fraction(mask, c, 6) >= 0.3]
    assert sample.centres.tolist() == [list(c) for c in expected]
    np.testing.assert_array_equal(sample.fractions, [_brute_fraction(mask, c, 6) for c in expected])
    assert sample.info["stride_px"] == step
    assert len(expected) > 1
    assert np.all((sample.centres - [lo for lo, _ in box]) % step == 0)


# --- errors -----------------------------------------------------------------------------------
def test_empty_mask_error_names_the_tomogram_and_the_fix():
    with pytest.raises(ValueError) as err:
        sample_centres(np.zeros((20, 20, 20), dtype=np.uint8), cube_px=8, n=5, seed=0, name="tomo_10.00Apx")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("mask of tomo_10.00Apx is empty (0 % of voxels); lower mask.density_percentage/std_percentage "
                   "or check the tomogram's contrast (mask.density_contrast)")


def test_thin_tomogram_error_names_the_sizes():
    with pytest.raises(ValueError) as err:
        sample_centres(np.ones((20, 40, 40), dtype=bool), cube_px=16, n=5, seed=0, stored_px=24, name="t1")
    assert str(err.value) == ("tomogram t1 is (20, 40, 40) voxels but the stored cube is 24; "
                              "lower extract.cube_size_px or bin less")
    with pytest.raises(ValueError, match=r"tomogram t2 is \(36, 206, 94\) voxels but the stored cube is 46"):
        require_cube_fits((36, 206, 94), stored_px=46, name="t2")
    require_cube_fits((36, 206, 94), stored_px=36)


@pytest.mark.parametrize("sampling", ["random", "grid"])
def test_no_cube_reaching_the_fraction_reports_the_best(sampling):
    mask = np.zeros((32, 32, 32), dtype=bool)
    mask[10:14, 10:14, 10:14] = True  # 64 voxels: at most 64/512 = 0.125 of an 8³ cube
    with pytest.raises(ValueError) as err:
        sample_centres(mask, cube_px=8, n=5, seed=0, sampling=sampling, stride_px=1, name="t3")
    msg = str(err.value)
    assert msg == ("no cube of 8³ voxels in t3 reaches min_mask_fraction=0.3: the best has 0.12 "
                   "(mask covers 0.195 %); lower extract.min_mask_fraction or enlarge the mask")


# --- validation split -------------------------------------------------------------------------
def test_split_is_reproducible_and_close_to_the_fraction():
    a = split_train_validation(200, validation_fraction=0.1, seed=4)
    b = split_train_validation(200, validation_fraction=0.1, seed=4)
    c = split_train_validation(200, validation_fraction=0.1, seed=5)
    assert a.dtype == bool and a.shape == (200,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == 20 and c.sum() == 20
    assert split_train_validation(57, validation_fraction=0.25, seed=0).sum() == 14


def test_split_edge_cases():
    assert split_train_validation(5, validation_fraction=0.05, seed=0).sum() == 1  # at least one
    assert split_train_validation(2, validation_fraction=0.9, seed=0).sum() == 1  # one left to train
    assert split_train_validation(1, validation_fraction=0.5, seed=0).sum() == 0
    assert split_train_validation(10, validation_fraction=0.0, seed=0).sum() == 0
    assert split_train_validation(0, validation_fraction=0.1, seed=0).shape == (0,)
    with pytest.raises(ValueError, match="validation_fraction"):
        split_train_validation(10, validation_fraction=1.0, seed=0)
