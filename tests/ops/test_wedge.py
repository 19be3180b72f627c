"""Missing-wedge mask: analytic fraction, symmetries, and agreement with the projector."""

import numpy as np
import pytest

from cryo_pipeline.ops.projector import ParallelBeamProjector
from cryo_pipeline.ops.wedge import (
    apply_fourier_mask_3d,
    apply_missing_wedge_3d,
    fourier_tilt_angle_deg,
    missing_wedge_mask_3d,
)


def _annulus_fraction(mask_plane: np.ndarray) -> float:
    n = mask_plane.shape[0]
    k = np.fft.fftfreq(n) * n
    radius = np.hypot(k[:, None], k[None, :])
    ring = (radius > 0.2 * n) & (radius < 0.45 * n)
    return float(mask_plane[ring].mean())


@pytest.mark.parametrize("tilt_range", [(-60, 60), (-45, 45), (-50, 65), (-30, 70), (-90, 90), (0, 10)])
def test_measured_fraction_matches_tilt_span(tilt_range):
    low, high = tilt_range
    mask = missing_wedge_mask_3d((512, 1, 512), tilt_min_deg=low, tilt_max_deg=high)
    assert _annulus_fraction(mask[:, 0, :]) == pytest.approx((high - low) / 180.0, abs=0.01)


def test_mask_is_point_symmetric_constant_in_ky_and_keeps_dc():
    for shape in ((17, 9, 21), (16, 8, 20)):  # even sizes too: Nyquist planes are symmetrised
        mask = missing_wedge_mask_3d(shape, tilt_min_deg=-40, tilt_max_deg=65)
        flipped = np.roll(mask[::-1, ::-1, ::-1], shift=(1, 1, 1), axis=(0, 1, 2))  # k -> -k
        np.testing.assert_array_equal(mask, flipped)
    np.testing.assert_array_equal(mask, np.broadcast_to(mask[:, :1, :], mask.shape))
    assert mask[0, 0, 0] == 1.0


def test_kx_axis_measured_and_kz_axis_missing_for_limited_range():
    mask = missing_wedge_mask_3d((32, 4, 32), tilt_min_deg=-60, tilt_max_deg=60)
    assert mask[0, 0, 5] == 1.0  # k_x axis: measured by the 0 deg tilt
    assert mask[5, 0, 0] == 0.0  # k_z axis: needs a 90 deg tilt


def test_tilt_angle_of_fourier_point_follows_the_projection_geometry():
    # a projection at +30 deg measures the direction (-sin 30, cos 30) in (k_z, k_x)
    theta = fourier_tilt_angle_deg(np.array(-np.sin(np.radians(30))), np.array(np.cos(np.radians(30))))
    assert float(theta) == pytest.approx(30.0, abs=1e-9)


@pytest.mark.parametrize("angle_deg", [35.0, -50.0])
def test_single_tilt_backprojection_lives_on_the_wedge_of_that_tilt(angle_deg):
    """Pins the sign convention shared by the projector and the wedge."""
    rng = np.random.default_rng(3)
    shape = (48, 4, 48)
    volume = rng.standard_normal(shape)
    projector = ParallelBeamProjector(shape, [angle_deg])
    import torch

    smeared = projector.adjoint(projector.forward(torch.from_numpy(volume))).numpy()
    power = np.abs(np.fft.fftn(smeared)) ** 2
    same = missing_wedge_mask_3d(shape, tilt_min_deg=angle_deg - 6, tilt_max_deg=angle_deg + 6)
    mirror = missing_wedge_mask_3d(shape, tilt_min_deg=-angle_deg - 6, tilt_max_deg=-angle_deg + 6)
    # the plane has a finite thickness (voxel footprint), so a ±6° wedge holds most, not all
    assert (power * same).sum() / power.sum() > 0.7
    assert (power * mirror).sum() / power.sum() < 0.1


def test_soft_edge_is_one_inside_monotone_outside_and_bounded():
    hard = missing_wedge_mask_3d((64, 1, 64), tilt_min_deg=-60, tilt_max_deg=60)
    soft = missing_wedge_mask_3d((64, 1, 64), tilt_min_deg=-60, tilt_max_deg=60, soft_edge_deg=10)
    assert soft.min() >= 0.0 and soft.max() <= 1.0
    np.testing.assert_array_equal(soft[hard == 1], 1.0)
    kz, kx = np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij")
    theta = np.abs(fourier_tilt_angle_deg(kz, kx))
    plane = soft[:, 0, :]
    far = theta > 70.0
    far[0, 0] = False  # DC is always kept
    assert np.all(plane[far] == 0.0)
    band = (theta > 61) & (theta < 69)
    assert np.all((plane[band] > 0) & (plane[band] < 1))


@pytest.mark.parametrize("shape", [(24, 20, 28), (25, 19, 27)])
def test_apply_missing_wedge_is_a_projection_and_removes_wedge_power(shape):
    rng = np.random.default_rng(0)
    volume = rng.standard_normal(shape).astype(np.float32)
    once = apply_missing_wedge_3d(volume, tilt_min_deg=-60, tilt_max_deg=60)
    twice = apply_missing_wedge_3d(once, tilt_min_deg=-60, tilt_max_deg=60)
    np.testing.assert_allclose(twice, once, atol=1e-5)
    mask = missing_wedge_mask_3d(volume.shape, tilt_min_deg=-60, tilt_max_deg=60)
    missing_power = np.abs(np.fft.fftn(once))[mask == 0] ** 2
    assert missing_power.max() < 1e-6 * np.abs(np.fft.fftn(volume)).max() ** 2


@pytest.mark.parametrize("bad", [(-95, 60), (-60, 91), (30, 30), (40, -40)])
def test_invalid_tilt_range_names_the_values(bad):
    with pytest.raises(ValueError, match=r"tilt range \[.*\] deg is invalid"):
        missing_wedge_mask_3d((8, 8, 8), tilt_min_deg=bad[0], tilt_max_deg=bad[1])


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        apply_fourier_mask_3d(np.zeros((4, 4, 4)), np.ones((4, 4, 5)))
