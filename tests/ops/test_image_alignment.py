"""Tilt-axis rotation and alignment kernels against analytic blob tilt series (no inverse crime)."""

import numpy as np
import pytest

from cryo_pipeline.ops.blob_projections import blob_tilt_series, random_blobs
from cryo_pipeline.ops.fsc import fourier_shell_correlation
from cryo_pipeline.ops.image_alignment import (
    TiltAlignment,
    align_image,
    align_stack,
    border_mean,
    quarter_turns,
    rotate_to_tilt_axis_y,
    rotated_shape_yx,
    rotation_matrix_xy,
)
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

ANGLES = np.arange(-60.0, 61.0, 3.0)
SHAPE_YX = (48, 48)
DEPTH = 32


@pytest.fixture(scope="module")
def blobs():
    return random_blobs(14, radius_px=15, sigma_range_px=(1.3, 2.5), seed=3)


@pytest.fixture(scope="module")
def reference(blobs):
    """WBP of the exactly aligned series (tilt axis on y, no shifts)."""
    series = blob_tilt_series(blobs, ANGLES, image_shape_yx=SHAPE_YX)
    return weighted_backprojection_3d(series, ANGLES, volume_shape_zyx=(DEPTH, *SHAPE_YX))


def _central_crop(volume, shape_yx):
    dy, dx = ((n - m) // 2 for n, m in zip(volume.shape[1:], shape_yx, strict=True))
    return volume[:, dy:dy + shape_yx[0], dx:dx + shape_yx[1]]


def _min_fsc_to_half_nyquist(series, reference):
    volume = weighted_backprojection_3d(series, ANGLES, volume_shape_zyx=(DEPTH, *series.shape[1:]))
    _, fsc = fourier_shell_correlation(_central_crop(volume, SHAPE_YX), reference)
    nyquist = min(reference.shape) // 2
    return float(fsc[1:nyquist // 2 + 1].min())


def _raw(blobs, rotation_deg, shifts=None):
    matrices = np.array([rotation_matrix_xy(r) for r in np.broadcast_to(rotation_deg, ANGLES.shape)])
    return blob_tilt_series(blobs, ANGLES, image_shape_yx=SHAPE_YX, matrices_xy=matrices, shifts_xy_px=shifts)


@pytest.mark.parametrize(("angle", "k"), [(0.0, 0), (90.0, 1), (-90.0, 3), (180.0, 2), (-180.0, 2), (45.0, None)])
def test_quarter_turns(angle, k):
    assert quarter_turns(angle) == k


def test_quarter_turns_are_exact_rot90_and_agree_with_the_interpolator():
    stack = np.random.default_rng(0).normal(size=(3, 6, 9)).astype(np.float32)
    for angle in (90.0, -90.0, 180.0, 0.0):
        exact = rotate_to_tilt_axis_y(stack, angle)
        interpolated = align_stack(stack, TiltAlignment.tilt_axis_only(angle, 3), order=3)
        assert exact.shape == interpolated.shape
        np.testing.assert_allclose(exact, interpolated, atol=1e-5)
    # axis along x at +90 deg: the hand transpose that puts it on y
    np.testing.assert_array_equal(rotate_to_tilt_axis_y(stack, 90.0), stack.transpose(0, 2, 1)[:, ::-1, :])
    assert rotate_to_tilt_axis_y(stack.astype(np.int16), 90.0).dtype == np.int16


def test_rotated_shape_loses_nothing_and_keeps_parity():
    assert rotated_shape_yx((6, 9), [90.0]) == (9, 6)
    assert rotated_shape_yx((64, 64), [0.0]) == (64, 64)
    h, w = rotated_shape_yx((48, 64), [5.0])
    assert h >= 48 * np.cos(np.radians(5)) + 64 * np.sin(np.radians(5)) and (h - 48) % 2 == 0 and (w - 64) % 2 == 0


def test_no_raw_pixel_is_lost_by_a_rotation():
    image = np.ones((40, 60), np.float32)
    shape = rotated_shape_yx(image.shape, [30.0])
    whole = align_image(image, rotation_matrix_xy(30.0), (0.0, 0.0), out_shape_yx=shape, order=1, fill=0.0)
    cut = align_image(image, rotation_matrix_xy(30.0), (0.0, 0.0), out_shape_yx=image.shape, order=1, fill=0.0)
    assert whole.sum() == pytest.approx(image.sum(), rel=0.01)  # a rotation keeps the area
    assert cut.sum() < 0.9 * image.sum()  # the input's own size would cut the corners off


def test_fill_is_the_border_mean():
    image = np.full((10, 10), 7.0, np.float32)
    image[3:7, 3:7] = 100.0
    assert border_mean(image) == 7.0
    out = align_image(image, np.eye(2), (50.0, 0.0), out_shape_yx=(10, 10))
    np.testing.assert_allclose(out, 7.0)


def test_axis_at_90_reconstructs_identically_to_the_hand_transposed_series(blobs, reference):
    raw = _raw(blobs, 90.0)
    by_hand = np.ascontiguousarray(raw.transpose(0, 2, 1)[:, ::-1, :])
    rotated = rotate_to_tilt_axis_y(raw, 90.0)
    a = weighted_backprojection_3d(rotated, ANGLES, volume_shape_zyx=(DEPTH, *SHAPE_YX))
    b = weighted_backprojection_3d(by_hand, ANGLES, volume_shape_zyx=(DEPTH, *SHAPE_YX))
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    assert _min_fsc_to_half_nyquist(rotated, reference) > 0.999


@pytest.mark.parametrize("axis_deg", [5.0, 85.0, -95.0])
def test_an_oblique_axis_gives_wbp_fsc_above_0_9_to_half_nyquist(blobs, reference, axis_deg):
    raw = _raw(blobs, axis_deg)
    assert _min_fsc_to_half_nyquist(rotate_to_tilt_axis_y(raw, axis_deg), reference) > 0.9
    if axis_deg == 5.0:  # the control: leaving the axis where it is fails the same bar
        assert _min_fsc_to_half_nyquist(raw, reference) < 0.9


def test_shifts_and_rotation_are_undone_in_one_interpolation(blobs, reference):
    rng = np.random.default_rng(1)
    rotation = 84.0 + rng.uniform(-1.0, 1.0, ANGLES.size)
    shifts = rng.uniform(-6.0, 6.0, (ANGLES.size, 2))
    raw = _raw(blobs, rotation, shifts)
    alignment = TiltAlignment(np.array([rotation_matrix_xy(r) for r in rotation]), shifts, np.arange(ANGLES.size))
    np.testing.assert_allclose(alignment.rotations_deg, rotation, atol=1e-9)
    assert _min_fsc_to_half_nyquist(align_stack(raw, alignment), reference) > 0.95
    assert _min_fsc_to_half_nyquist(rotate_to_tilt_axis_y(raw, 84.0), reference) < 0.5  # shifts left in


def test_alignment_checks_its_shapes_and_indices():
    with pytest.raises(ValueError, match="aligned twice"):
        TiltAlignment(np.repeat(np.eye(2)[None], 2, 0), np.zeros((2, 2)), np.array([1, 1]))
    with pytest.raises(ValueError, match="refers to image 4 of a stack of 3"):
        align_stack(np.zeros((3, 4, 4)), TiltAlignment(np.eye(2)[None], np.zeros((1, 2)), np.array([3])))
    with pytest.raises(ValueError, match=r"within \[-180, 180\]"):
        rotate_to_tilt_axis_y(np.zeros((1, 4, 4)), 270.0)
