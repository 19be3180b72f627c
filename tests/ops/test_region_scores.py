"""Held-out-band FSC, measured-region fidelity and half-map FSC: analytic cases."""

import numpy as np
import pytest

from cryo_pipeline.ops.fourier import shell_index_3d
from cryo_pipeline.ops.fsc import measured_region_mask_3d, region_shell_fsc
from cryo_pipeline.ops.region_scores import (
    band_fsc,
    crossing_shell,
    halfmap_scores,
    heldout_band_mask_3d,
    mean_over_shells,
    measured_region_fsc_mean,
    reference_resolution_shell,
    tukey_window_1d,
)
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d

SHAPE = (48, 48, 48)
WORKING = np.arange(-60.0, 60.5, 2.0)
REFERENCE = np.arange(-76.0, 76.5, 2.0)
HELDOUT = REFERENCE[np.abs(REFERENCE) > 60.5]


@pytest.fixture(scope="module")
def signal():
    return np.random.default_rng(0).standard_normal(SHAPE)


def _keep_shells(volume, cutoff, seed):
    """volume's shells <= cutoff, independent noise of the same spectrum level above."""
    keep = shell_index_3d(volume.shape) <= cutoff
    other = np.random.default_rng(seed).standard_normal(volume.shape)
    return np.real(np.fft.ifftn(np.where(keep, np.fft.fftn(volume), np.fft.fftn(other))))


def test_band_lies_outside_working_planes_and_on_heldout_planes():
    band = heldout_band_mask_3d(SHAPE, working_angles_deg=WORKING, heldout_angles_deg=HELDOUT)
    assert band.any()
    assert not (band & measured_region_mask_3d(SHAPE, WORKING)).any()
    assert not (band & ~measured_region_mask_3d(SHAPE, HELDOUT)).any()
    # the k_z axis (90 deg, in the wedge of ±76 too): beyond the 76 deg plane's half-voxel
    # reach (|k_z| <= 0.5 / cos 76 = 2.07); |k_z| = 2 sits at the 1-voxel margin of the 60 deg plane
    assert not band[3:46, :, 0].any() and not band[0:2, :, 0].any()
    distance_60 = np.abs(np.fft.fftfreq(48)[:, None] * 48 * np.cos(np.radians(60))
                         + np.fft.fftfreq(48)[None, :] * 48 * np.sin(np.radians(60)))
    assert not (band[:, 0, :] & (distance_60 <= 1.0)).any()


def test_band_fsc_of_identical_volumes_is_one(signal):
    curve = band_fsc(signal, signal, working_angles_deg=WORKING, heldout_angles_deg=HELDOUT)
    finite = np.isfinite(curve)
    assert finite[5:].all()  # the band reaches every shell from a few voxels out
    np.testing.assert_allclose(curve[finite], 1.0, atol=1e-12)


def test_band_fsc_is_near_zero_for_a_wedged_estimate(signal):
    # an estimate that leaves the ±60 wedge empty has nothing in the band but what the
    # apodisation window smears in from the measured region next to it
    wedged = apply_missing_wedge_3d(signal, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    curve = band_fsc(wedged, signal, working_angles_deg=WORKING, heldout_angles_deg=HELDOUT)
    assert mean_over_shells(curve[6:]) < 0.15
    assert mean_over_shells(band_fsc(signal, signal, working_angles_deg=WORKING,
                                     heldout_angles_deg=HELDOUT)[6:]) == pytest.approx(1.0, abs=1e-12)


def test_band_fsc_follows_a_known_cutoff(signal):
    estimate = _keep_shells(signal, 12, seed=1)
    curve = band_fsc(estimate, signal, working_angles_deg=WORKING, heldout_angles_deg=HELDOUT)
    # the apodisation window blurs the step over ~2 shells
    assert np.all(curve[3:11][np.isfinite(curve[3:11])] > 0.99)
    assert abs(mean_over_shells(curve[15:])) < 0.1
    # the mean up to the cutoff is ~1; up to Nyquist it is diluted by the noise shells
    assert mean_over_shells(curve, max_shell=10) > 0.99
    assert mean_over_shells(curve) < 0.7


def test_band_fsc_rejects_an_empty_band(signal):
    with pytest.raises(ValueError, match="held-out band is empty"):
        band_fsc(signal, signal, working_angles_deg=WORKING, heldout_angles_deg=[0.0])


def test_tukey_window_is_flat_inside_and_tapers_to_the_edges():
    window = tukey_window_1d(40, fraction=0.5)
    assert np.all(window[10:30] == 1.0) and window[0] < 0.01 and np.all(np.diff(window[:10]) > 0)
    np.testing.assert_allclose(window, window[::-1], atol=1e-15)
    np.testing.assert_array_equal(tukey_window_1d(7, fraction=0.0), np.ones(7))


def test_reference_resolution_shell_of_a_noisy_reference(signal):
    even, odd = _keep_shells(signal, 10, seed=21), _keep_shells(signal, 10, seed=22)
    assert 9.0 <= reference_resolution_shell(even, odd) <= 12.0
    assert reference_resolution_shell(signal, signal) == 24.0


def test_mean_over_shells_skips_dc_and_nan():
    assert mean_over_shells(np.array([9.0, 1.0, np.nan, 3.0, 100.0]), max_shell=3.7) == 2.0
    assert np.isnan(mean_over_shells(np.array([1.0, np.nan])))


def test_crossing_shell_interpolates_and_handles_the_edges():
    assert crossing_shell(np.array([1.0, 1.0, 0.8, 0.0, 0.0]), threshold=0.5) == pytest.approx(2.375)
    assert crossing_shell(np.ones(10)) == 9.0
    assert crossing_shell(np.r_[1.0, np.zeros(9)]) == 1.0


def test_fidelity_is_one_when_only_the_wedge_changes(signal):
    wedged = apply_missing_wedge_3d(signal, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    noise = np.random.default_rng(5).standard_normal(SHAPE)
    filled = wedged + (noise - apply_missing_wedge_3d(noise, tilt_min_deg=-60.0, tilt_max_deg=60.0))
    dense = np.arange(-60.0, 60.5, 1.0)
    assert measured_region_fsc_mean(wedged, wedged, angles_deg=dense) == pytest.approx(1.0, abs=1e-12)
    # the half-voxel planes reach slightly past ±60 deg, where the fill differs: ~1, not exactly
    assert measured_region_fsc_mean(filled, wedged, angles_deg=dense) > 0.95


def test_fidelity_drops_when_measured_data_are_replaced(signal):
    dense = np.arange(-60.0, 60.5, 1.0)
    other = np.random.default_rng(7).standard_normal(SHAPE)
    assert abs(measured_region_fsc_mean(other, signal, angles_deg=dense)) < 0.05
    half = _keep_shells(signal, 12, seed=8)  # keeps shells <= 12 of 24
    assert measured_region_fsc_mean(half, signal, angles_deg=dense) == pytest.approx(12 / 24, abs=0.06)


def test_identical_halves_give_fsc_one_and_nyquist_resolution(signal):
    scores = halfmap_scores(signal, signal, tilt_min_deg=-60, tilt_max_deg=60, voxel_size_angstrom=3.0)
    assert scores["halfmap_fsc_resolution_angstrom"] == 6.0
    assert scores["halfmap_dfsc_missing_mean"] == pytest.approx(1.0, abs=1e-12)
    assert scores["halfmap_dfsc_measured_mean"] == pytest.approx(1.0, abs=1e-12)


def test_independent_noise_halves_give_fsc_near_zero_beyond_the_signal_band(signal):
    # shared signal up to shell 8, independent noise beyond: FSC ~1 then ~0, crossing at ~8.5
    even, odd = _keep_shells(signal, 8, seed=11), _keep_shells(signal, 8, seed=12)
    scores = halfmap_scores(even, odd, tilt_min_deg=-60, tilt_max_deg=60, voxel_size_angstrom=2.0)
    curve = np.asarray(scores["halfmap_fsc_curve"])
    assert np.all(curve[1:7] > 0.99)  # the apodisation window blurs the step over ~2 shells
    assert np.all(np.abs(curve[12:]) < 0.2) and abs(curve[11:].mean()) < 0.05
    assert 48 * 2.0 / 10 <= scores["halfmap_fsc_resolution_angstrom"] <= 48 * 2.0 / 8


def test_halves_that_disagree_in_the_wedge_only():
    rng = np.random.default_rng(3)
    common = rng.standard_normal(SHAPE)
    wedge_only = [c - apply_missing_wedge_3d(c, tilt_min_deg=-60, tilt_max_deg=60)
                  for c in (rng.standard_normal(SHAPE), rng.standard_normal(SHAPE))]
    measured_part = apply_missing_wedge_3d(common, tilt_min_deg=-60, tilt_max_deg=60)
    even, odd = measured_part + wedge_only[0], measured_part + wedge_only[1]
    scores = halfmap_scores(even, odd, tilt_min_deg=-60, tilt_max_deg=60, voxel_size_angstrom=1.0)
    # the apodisation window mixes a little of the disagreeing wedge into the measured region
    assert scores["halfmap_dfsc_measured_mean"] > 0.95
    assert abs(scores["halfmap_dfsc_missing_mean"]) < 0.1
