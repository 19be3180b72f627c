"""Weighted back-projection: full-range fidelity, limited-range wedge, weights, filters."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cryo_pipeline.ops.fsc import directional_fsc, fourier_shell_correlation
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.wbp import angular_weights_rad, ramp_filter_1d, weighted_backprojection_3d


@pytest.fixture(scope="module")
def smooth_phantom():
    rng = np.random.default_rng(11)
    n = 64
    volume = np.zeros((n, n, n), dtype=np.float32)
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2] * 3, indexing="ij"))
    for _ in range(12):
        centre = rng.uniform(-18, 18, size=3)
        radius = rng.uniform(3, 8)
        volume += (np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0)) < radius).astype(np.float32)
    return gaussian_filter(volume, 1.2)


def test_full_range_wbp_reproduces_the_phantom(smooth_phantom):
    angles = np.arange(-90, 90, 1.0)
    series = project_3d(smooth_phantom, angles)
    recon = weighted_backprojection_3d(series, angles, volume_shape_zyx=smooth_phantom.shape)
    shells, fsc = fourier_shell_correlation(recon, smooth_phantom)
    nyquist = smooth_phantom.shape[0] // 2
    assert fsc[1 : nyquist // 2 + 1].min() > 0.9
    assert np.linalg.norm(recon - smooth_phantom) / np.linalg.norm(smooth_phantom) < 0.1


def test_limited_range_wbp_misses_the_wedge(smooth_phantom):
    angles = np.arange(-60, 61, 2.0)
    series = project_3d(smooth_phantom, angles)
    recon = weighted_backprojection_3d(series, angles, volume_shape_zyx=smooth_phantom.shape)
    _, measured, missing = directional_fsc(recon, smooth_phantom, angles_deg=angles)
    low = slice(2, 16)
    assert np.nanmean(measured[low]) > 0.85
    assert np.nanmean(missing[low]) < np.nanmean(measured[low]) - 0.3


def test_angular_weights_cover_the_measured_range():
    assert angular_weights_rad(np.arange(-60, 61, 2.0)).sum() == pytest.approx(np.radians(122.0))
    full = angular_weights_rad(np.arange(-90, 91, 1.0))
    assert full.sum() == pytest.approx(np.pi)
    uneven = np.array([10.0, -20.0, 0.0, 40.0])
    np.testing.assert_allclose(angular_weights_rad(uneven), np.radians([20.0, 20.0, 15.0, 30.0]))
    with pytest.raises(ValueError, match="duplicates"):
        angular_weights_rad([0.0, 0.0, 3.0])


def test_ramp_filter_is_proportional_to_frequency():
    response = ramp_filter_1d(512)
    freq = np.fft.rfftfreq(512)
    mid = (freq > 0.05) & (freq < 0.45)
    np.testing.assert_allclose(response[mid], freq[mid], rtol=0.02)
    assert abs(response[0]) < 1e-3
    for window in ("shepp-logan", "cosine", "hann", "hamming"):
        windowed = ramp_filter_1d(512, window=window)
        assert np.all(windowed[1:] <= response[1:] + 1e-12)
    with pytest.raises(ValueError, match="unknown WBP filter"):
        ramp_filter_1d(64, window="bogus")


def test_angle_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"tilt angles \(3\) do not match tilt images \(4\)"):
        weighted_backprojection_3d(np.zeros((4, 2, 8)), [0.0, 1.0, 2.0], volume_shape_zyx=(8, 2, 8))
