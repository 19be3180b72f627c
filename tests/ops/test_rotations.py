"""Tests for the 24 cube rotations and the 20 wedge-moving rotations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cryo_pipeline.ops.rotations import (
    CUBE_ROTATIONS,
    WEDGE_ROTATIONS,
    apply_rotation_matrix,
    inverse_rotation_index,
    rotate_volume,
)
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d

EXCLUDED = [np.diag(d) for d in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]


def _key(m: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(m).ravel())


def _random_volume(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _wedge_set(n: int, tilt_min_deg: float, tilt_max_deg: float) -> set[tuple[int, int, int]]:
    """Measured Fourier bins (integer k about DC) of an odd n³ grid, as a set."""
    mask = missing_wedge_mask_3d((n, n, n), tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg, fftshift=True)
    c = n // 2
    return {(int(z) - c, int(y) - c, int(x) - c) for z, y, x in np.argwhere(mask > 0.5)}


def _rotated_set(points: set[tuple[int, int, int]], m: np.ndarray) -> set[tuple[int, int, int]]:
    arr = np.array(sorted(points)) @ m.T
    return {tuple(int(v) for v in row) for row in arr}


# --- the group ----------------------------------------------------------------------


def test_24_distinct_proper_signed_permutations():
    assert len(CUBE_ROTATIONS) == 24
    assert len({_key(m) for m in CUBE_ROTATIONS}) == 24
    for m in CUBE_ROTATIONS:
        assert m.shape == (3, 3) and np.issubdtype(m.dtype, np.integer)
        assert round(np.linalg.det(m)) == 1
        np.testing.assert_array_equal(m @ m.T, np.eye(3, dtype=int))
    np.testing.assert_array_equal(CUBE_ROTATIONS[0], np.eye(3, dtype=int))


def test_cube_rotations_closed_under_composition():
    keys = {_key(m) for m in CUBE_ROTATIONS}
    for a, b in itertools.product(CUBE_ROTATIONS, repeat=2):
        assert _key(a @ b) in keys
    for a in CUBE_ROTATIONS:
        assert _key(a.T) in keys


def test_20_wedge_rotations_are_the_cube_minus_the_4_diagonal_ones():
    assert len(WEDGE_ROTATIONS) == 20
    wedge_keys = {_key(m) for m in WEDGE_ROTATIONS}
    assert len(wedge_keys) == 20
    cube_keys = {_key(m) for m in CUBE_ROTATIONS}
    assert cube_keys - wedge_keys == {_key(m) for m in EXCLUDED}
    # 16 move the beam axis z onto y or x, 4 keep z (and swap y and x)
    assert sum(abs(int(m[0, 0])) == 1 for m in WEDGE_ROTATIONS) == 4


# --- the wedge ----------------------------------------------------------------------


def test_no_wedge_rotation_maps_the_wedge_onto_itself_but_the_excluded_do():
    measured = _wedge_set(17, -60.0, 60.0)
    for m in WEDGE_ROTATIONS:
        assert _rotated_set(measured, m) != measured
    for m in EXCLUDED:
        assert _rotated_set(measured, m) == measured


def test_wedge_mask_array_rotation_agrees_with_fourier_direction_set():
    # odd size: the fftshift centre n//2 is the geometric centre (n-1)/2
    n = 17
    mask = missing_wedge_mask_3d((n, n, n), tilt_min_deg=-60.0, tilt_max_deg=60.0, fftshift=True)
    for m in CUBE_ROTATIONS:
        rotated = apply_rotation_matrix(mask, m)
        expected = _rotated_set(_wedge_set(n, -60.0, 60.0), m)
        c = n // 2
        got = {(int(z) - c, int(y) - c, int(x) - c) for z, y, x in np.argwhere(rotated > 0.5)}
        assert got == expected
        assert np.array_equal(rotated, mask) == any(np.array_equal(m, e) for e in EXCLUDED)


def test_even_mask_moved_by_every_wedge_rotation():
    mask = missing_wedge_mask_3d((16, 16, 16), tilt_min_deg=-60.0, tilt_max_deg=60.0, fftshift=True)
    for i in range(20):
        assert not np.array_equal(rotate_volume(mask, i), mask)


def test_asymmetric_wedge_still_moved_by_all_20():
    measured = _wedge_set(17, -50.0, 65.0)
    for m in WEDGE_ROTATIONS:
        assert _rotated_set(measured, m) != measured


# --- applying to arrays -------------------------------------------------------------


def test_inverse_in_list_and_round_trip_exact():
    v = _random_volume((9, 9, 9))
    for i in range(20):
        j = inverse_rotation_index(i)
        np.testing.assert_array_equal(WEDGE_ROTATIONS[j] @ WEDGE_ROTATIONS[i], np.eye(3, dtype=int))
        np.testing.assert_array_equal(rotate_volume(rotate_volume(v, i), i, inverse=True), v)
        np.testing.assert_array_equal(rotate_volume(rotate_volume(v, i), j), v)


@pytest.mark.parametrize("shape", [(7, 7, 7), (6, 6, 6), (4, 5, 6)])
def test_single_voxel_lands_where_the_matrix_says(shape):
    rng = np.random.default_rng(1)
    n_in = np.array(shape)
    c_in = (n_in - 1) / 2
    for m in CUBE_ROTATIONS:
        p = np.array([rng.integers(0, s) for s in shape])
        v = np.zeros(shape, dtype=np.float32)
        v[tuple(p)] = 1.0
        out = apply_rotation_matrix(v, m)
        n_out = np.abs(m) @ n_in
        assert out.shape == tuple(n_out)
        q = m @ (p - c_in) + (n_out - 1) / 2
        assert np.allclose(q, np.rint(q))
        assert out[tuple(np.rint(q).astype(int))] == 1.0 and out.sum() == 1.0


def test_numpy_and_torch_agree_on_batches():
    v = _random_volume((2, 3, 5, 6, 7), seed=2)
    t = torch.from_numpy(v)
    for i in range(20):
        for inverse in (False, True):
            out_np = rotate_volume(v, i, inverse=inverse)
            out_t = rotate_volume(t, i, inverse=inverse)
            assert isinstance(out_t, torch.Tensor) and out_t.is_contiguous()
            np.testing.assert_array_equal(out_t.numpy(), out_np)
            # each batch item is rotated on its own
            np.testing.assert_array_equal(out_np[1, 2], rotate_volume(v[1, 2], i, inverse=inverse))


def test_torch_rotation_is_differentiable():
    v = torch.randn(1, 1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    for i in range(20):
        w = torch.randn(rotate_volume(v, i).shape, dtype=torch.float64)
        (grad,) = torch.autograd.grad((rotate_volume(v, i) * w).sum(), v)
        # the gradient is w rotated back
        torch.testing.assert_close(grad, rotate_volume(w, i, inverse=True), rtol=0, atol=0)


def test_bad_inputs_rejected():
    v = np.zeros((4, 4, 4))
    with pytest.raises(ValueError, match="out of range"):
        rotate_volume(v, 20)
    with pytest.raises(ValueError, match="out of range"):
        inverse_rotation_index(-1)
    with pytest.raises(TypeError):
        rotate_volume(v, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="det"):
        apply_rotation_matrix(v, -np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="signed permutation"):
        apply_rotation_matrix(v, np.ones((3, 3), dtype=int))
    with pytest.raises(ValueError, match=">= 3 dimensions"):
        apply_rotation_matrix(np.zeros((4, 4)), np.eye(3, dtype=int))
