"""The independent simulation projector: geometry, mass, analytic line integrals, and that it is not ours."""

import numpy as np
import pytest

from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.projector_supersampled import project_3d_supersampled


def _gaussian_blob(shape, centre_zx, sigma):
    z = np.arange(shape[0])[:, None, None] - (shape[0] - 1) / 2 - centre_zx[0]
    x = np.arange(shape[2])[None, None, :] - (shape[2] - 1) / 2 - centre_zx[1]
    return np.broadcast_to(np.exp(-(z**2 + x**2) / (2 * sigma**2)), shape).astype(np.float32)


@pytest.mark.parametrize("angle_deg", [-60.0, -25.0, 0.0, 40.0])
def test_a_gaussian_projects_to_its_analytic_line_integral_at_x_cos_minus_z_sin(angle_deg):
    shape, centre, sigma = (41, 3, 45), (6.0, -4.0), 2.5
    series = project_3d_supersampled(_gaussian_blob(shape, centre, sigma), [angle_deg], supersampling=4)
    theta = np.radians(angle_deg)
    u0 = centre[1] * np.cos(theta) - centre[0] * np.sin(theta)  # DESIGN.md §1 detector coordinate
    u = np.arange(shape[2]) - (shape[2] - 1) / 2
    expected = np.sqrt(2 * np.pi) * sigma * np.exp(-((u - u0) ** 2) / (2 * sigma**2))  # ∫ exp(-t²/2σ²) dt
    np.testing.assert_allclose(series[0, 1], expected, atol=0.01 * expected.max())
    np.testing.assert_allclose(series[0, 0], series[0, 2])  # y is not resampled


def test_mass_is_conserved_when_the_detector_covers_the_volume():
    rng = np.random.default_rng(0)
    volume = np.zeros((24, 2, 24), np.float32)
    volume[4:20, :, 4:20] = rng.random((16, 2, 16))
    series = project_3d_supersampled(volume, np.arange(-60, 61, 15.0), detector_width_px=40)
    np.testing.assert_allclose(series.sum(axis=(1, 2)), volume.sum(), rtol=2e-3)


def test_agrees_with_the_fitting_projector_on_smooth_data_but_is_a_different_model():
    rng = np.random.default_rng(1)
    sharp = np.zeros((32, 4, 40), np.float32)
    sharp[10:22, :, 12:30] = 1.0
    sharp += 0.2 * rng.random(sharp.shape).astype(np.float32)
    angles = np.arange(-60, 61, 4.0)
    ours, independent = project_3d(sharp, angles), project_3d_supersampled(sharp, angles)
    relative = np.linalg.norm(ours - independent) / np.linalg.norm(ours)
    assert 1e-3 < relative < 0.05  # the discretisations differ, the geometry does not
    smooth = _gaussian_blob((32, 4, 40), (1.0, 2.0), 4.0)
    relative_smooth = (np.linalg.norm(project_3d(smooth, angles) - project_3d_supersampled(smooth, angles))
                       / np.linalg.norm(project_3d(smooth, angles)))
    assert relative_smooth < 0.01


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="3D"):
        project_3d_supersampled(np.zeros((4, 4)), [0.0])
    with pytest.raises(ValueError, match="supersampling"):
        project_3d_supersampled(np.zeros((4, 4, 4)), [0.0], supersampling=0)
    with pytest.raises(ValueError, match="empty"):
        project_3d_supersampled(np.zeros((4, 4, 4)), [])
