"""FSC, its resolution, the directional FSC and the no-reference wedge fill."""

import time

import numpy as np
import pytest

from cryo_pipeline.ops.fourier import fftfreq_grid_3d, shell_index_3d
from cryo_pipeline.ops.fsc import (
    directional_fsc,
    dfsc_missing_mean,
    fourier_shell_correlation,
    fsc_metrics,
    fsc_resolution_angstrom,
    measured_region_mask_3d,
    shell_frequency_per_angstrom,
    wedge_fill_ratio,
)
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d

SHAPE = (64, 64, 64)
TILTS_2DEG = np.arange(-60.0, 60.5, 2.0)
TILTS_1DEG = np.arange(-60.0, 60.5, 1.0)


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).standard_normal(SHAPE)


def _signal_below_noise_above(gt, cutoff_shell, seed):
    """Keep gt's Fourier shells <= cutoff, independent noise above."""
    keep = shell_index_3d(gt.shape) <= cutoff_shell
    other = np.random.default_rng(seed).standard_normal(gt.shape)
    spectrum = np.where(keep, np.fft.fftn(gt), np.fft.fftn(other))
    return np.real(np.fft.ifftn(spectrum))


def test_fsc_with_itself_is_one_everywhere(noise):
    shells, fsc = fourier_shell_correlation(noise, noise)
    np.testing.assert_array_equal(shells, np.arange(33))
    np.testing.assert_allclose(fsc, 1.0, atol=1e-12)


def test_fsc_of_independent_noise_is_near_zero(noise):
    other = np.random.default_rng(1).standard_normal(SHAPE)
    _, fsc = fourier_shell_correlation(noise, other)
    assert abs(fsc[1:].mean()) < 0.05
    assert np.all(np.abs(fsc[4:]) < 0.2)  # shells with >= ~100 voxels


def test_fsc_resolution_finds_known_cutoff(noise):
    # FSC = 1 up to shell 16, ~0 beyond: the 0.143 crossing lies between shells 16 and 17
    estimate = _signal_below_noise_above(noise, 16, seed=2)
    _, fsc = fourier_shell_correlation(estimate, noise)
    assert np.all(fsc[1:17] > 0.999) and np.all(np.abs(fsc[17:]) < 0.2)
    for threshold in (0.143, 0.5):
        res = fsc_resolution_angstrom(fsc, box_px=64, voxel_size_angstrom=1.0, threshold=threshold)
        assert 64 / 17 <= res <= 64 / 16  # within one shell of the 4-voxel cutoff


def test_fsc_resolution_interpolates_linearly():
    fsc = np.array([1.0, 1.0, 0.8, 0.0, 0.0])
    # 0.5 is crossed (0.8 - 0.5)/0.8 = 3/8 of the way from shell 2 to shell 3
    res = fsc_resolution_angstrom(fsc, box_px=40, voxel_size_angstrom=1.0, threshold=0.5)
    assert res == pytest.approx(40 / 2.375, rel=1e-12)


def test_resolution_scales_with_voxel_size(noise):
    _, fsc = fourier_shell_correlation(_signal_below_noise_above(noise, 10, seed=3), noise)
    one = fsc_resolution_angstrom(fsc, box_px=64, voxel_size_angstrom=1.0)
    assert fsc_resolution_angstrom(fsc, box_px=64, voxel_size_angstrom=2.5) == pytest.approx(2.5 * one, rel=1e-12)


def test_resolution_special_cases():
    assert fsc_resolution_angstrom(np.ones(33), box_px=64, voxel_size_angstrom=3.0) == 6.0  # Nyquist
    assert fsc_resolution_angstrom(np.r_[1.0, np.zeros(32)], box_px=64, voxel_size_angstrom=3.0) == 192.0
    with pytest.raises(ValueError, match="-1"):
        fsc_resolution_angstrom(np.ones(33), box_px=64, voxel_size_angstrom=-1)


def test_shell_frequencies_reach_nyquist():
    freq = shell_frequency_per_angstrom(33, box_px=64, voxel_size_angstrom=2.0)
    assert freq[0] == 0.0 and freq[-1] == pytest.approx(1 / 4.0)  # 1 / (2 · voxel)


def test_full_tilt_range_measures_everything():
    mask = measured_region_mask_3d(SHAPE, np.arange(-90.0, 90.5, 1.0))
    assert mask.shape == SHAPE
    assert (~mask).mean() < 1e-3


def test_sixty_degree_range_misses_a_third_of_the_central_plane():
    plane = measured_region_mask_3d(SHAPE, TILTS_2DEG)[:, 0, :]
    kz, _, kx = fftfreq_grid_3d(SHAPE)
    radius = np.hypot(kz[:, 0, :] * 64, kx[:, 0, :] * 64)
    inside = (radius > 0) & (radius <= 32)
    assert (~plane[inside]).mean() == pytest.approx(1 / 3, abs=0.03)
    assert np.all(plane[0, :])  # the k_x axis is the 0° plane: always measured
    assert not plane[16, 0]  # the k_z axis is never measured below 90°


def test_wedge_fill_ratio_of_isotropic_and_wedged_noise(noise):
    assert wedge_fill_ratio(noise, angles_deg=TILTS_2DEG) == pytest.approx(1.0, abs=0.15)
    wedged = apply_missing_wedge_3d(noise, tilt_min_deg=-60, tilt_max_deg=60)
    assert wedge_fill_ratio(wedged, angles_deg=TILTS_2DEG) < 0.05
    assert wedge_fill_ratio(wedged, angles_deg=TILTS_1DEG) < 1e-6


@pytest.mark.parametrize("tilts", [TILTS_1DEG, TILTS_2DEG])
def test_directional_fsc_separates_measured_and_missing(noise, tilts):
    wedged = apply_missing_wedge_3d(noise, tilt_min_deg=-60, tilt_max_deg=60)
    shells, measured, missing = directional_fsc(wedged, noise, angles_deg=tilts)
    assert shells.shape == measured.shape == missing.shape == (33,)
    assert np.nanmean(measured[1:]) > 0.95 and np.nanmin(measured[1:]) > 0.85
    assert abs(dfsc_missing_mean(missing)) < 0.05
    assert np.isnan(missing[0])  # DC lies on every plane


def test_directional_fsc_of_identical_volumes_is_one(noise):
    _, measured, missing = directional_fsc(noise, noise, angles_deg=TILTS_2DEG)
    np.testing.assert_allclose(measured, 1.0, atol=1e-12)
    np.testing.assert_allclose(missing[1:], 1.0, atol=1e-12)


def test_dfsc_missing_mean_ignores_dc_and_nan():
    assert dfsc_missing_mean(np.array([np.nan, 0.2, np.nan, 0.4])) == pytest.approx(0.3)
    assert np.isnan(dfsc_missing_mean(np.array([1.0, np.nan])))


def test_fsc_metrics_of_a_wedged_volume(noise):
    wedged = apply_missing_wedge_3d(noise, tilt_min_deg=-60, tilt_max_deg=60)
    scores = fsc_metrics(wedged, noise, angles_deg=TILTS_1DEG, voxel_size_angstrom=5.0)
    # one third of every shell is missing, so FSC ≈ sqrt(2/3) ≈ 0.8 everywhere: never below 0.5
    assert scores["fsc_resolution_angstrom"] == scores["fsc_resolution_05_angstrom"] == 10.0
    assert np.mean(scores["fsc_curve"][1:]) == pytest.approx(np.sqrt(2 / 3), abs=0.05)
    assert scores["dfsc_measured_mean"] > 0.95 and scores["dfsc_missing_mean"] == pytest.approx(0.0, abs=1e-9)
    lengths = {len(scores[k]) for k in ("fsc_curve", "fsc_measured_curve", "fsc_missing_curve", "frequency_per_angstrom")}
    assert lengths == {33}
    assert scores["frequency_per_angstrom"][-1] == pytest.approx(0.1)


def test_fsc_metrics_is_fast_at_paper_size():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 140, 140, 140))
    start = time.process_time()  # CPU seconds of this process: the same on an idle or a busy machine
    fsc_metrics(a, b, angles_deg=TILTS_2DEG, voxel_size_angstrom=1.0)
    assert time.process_time() - start < 5.0


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(8, 8, 8\) and \(8, 8, 9\)"):
        fourier_shell_correlation(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
