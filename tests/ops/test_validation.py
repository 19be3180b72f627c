"""The validation composition and the full-range reference on a simulated ±76° series."""

import numpy as np
import pytest

from cryo_pipeline.ops.noise import add_gaussian_noise
from cryo_pipeline.ops.phantoms import make_phantom
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.reference import full_range_reference
from cryo_pipeline.ops.tilts import alternate_halves, tilts_in_range
from cryo_pipeline.ops.validation import VALIDATION_COLUMNS, Halves, HeldOut, validation_scores
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

ANGLES = np.arange(-76.0, 76.5, 2.0)
SHAPE = (32, 24, 48)


@pytest.fixture(scope="module")
def simulated():
    truth = make_phantom("mixed_shapes", shape_zyx=SHAPE, seed=2)
    series = add_gaussian_noise(project_3d(truth, ANGLES), snr=5, seed=0)
    return truth, series


@pytest.fixture(scope="module")
def reference(simulated):
    _, series = simulated
    return full_range_reference(series, ANGLES, working_range_deg=(-60, 60), reference_range_deg=(-76, 76),
                                volume_shape_zyx=SHAPE, sirt_iterations=20)


def test_reference_uses_every_tilt_and_holds_out_the_outer_ones(reference):
    assert reference.reference_indices.size == 77
    np.testing.assert_array_equal(ANGLES[reference.heldout_indices], ANGLES[np.abs(ANGLES) > 60.5])
    assert reference.volume.shape == SHAPE and reference.volume.min() >= 0  # non-negative SIRT
    assert 4 < reference.resolution_shell <= 16


def test_reference_rejects_ranges_that_hold_nothing_out(simulated):
    with pytest.raises(ValueError, match="nothing is held out"):
        full_range_reference(simulated[1], ANGLES, working_range_deg=(-76, 76), reference_range_deg=(-76, 76),
                             volume_shape_zyx=SHAPE)
    with pytest.raises(ValueError, match="sirt_iterations must be >= 1"):
        full_range_reference(simulated[1], ANGLES, working_range_deg=(-60, 60), reference_range_deg=(-76, 76),
                             volume_shape_zyx=SHAPE, sirt_iterations=0)


def test_truth_scores_better_than_a_wedged_wbp(simulated, reference):
    truth, series = simulated
    work = tilts_in_range(ANGLES, tilt_min_deg=-60, tilt_max_deg=60)
    wbp = weighted_backprojection_3d(series[work], ANGLES[work], volume_shape_zyx=SHAPE)
    held = HeldOut(reference.volume, reference.resolution_shell, series[reference.heldout_indices],
                   ANGLES[reference.heldout_indices])
    scores = {}
    for name, volume in (("truth", truth), ("wbp", wbp)):
        columns, curves, rows = validation_scores(volume, voxel_size_angstrom=10.0, working_angles_deg=ANGLES[work],
                                                  heldout=held, method_input=wbp)
        assert set(columns) == set(VALIDATION_COLUMNS) and len(rows) == 16
        assert np.isnan(columns["halfmap_fsc_resolution_angstrom"])  # no halves given
        scores[name] = columns
    assert scores["truth"]["band_fsc_mean"] > scores["wbp"]["band_fsc_mean"] + 0.3
    assert scores["truth"]["heldout_ncc_mean"] > scores["wbp"]["heldout_ncc_mean"] + 0.1
    assert scores["wbp"]["measured_region_fsc_mean"] == pytest.approx(1.0, abs=1e-12)
    assert scores["truth"]["isotropy_z_x"] > scores["wbp"]["isotropy_z_x"]


def test_halves_of_a_noisy_series_give_a_finite_resolution(simulated):
    _, series = simulated
    work = tilts_in_range(ANGLES, tilt_min_deg=-60, tilt_max_deg=60)
    even, odd = alternate_halves(ANGLES[work])
    recon = [weighted_backprojection_3d(series[work[i]], ANGLES[work[i]], volume_shape_zyx=SHAPE) for i in (even, odd)]
    columns, curves, _ = validation_scores(recon[0], voxel_size_angstrom=10.0, working_angles_deg=ANGLES[work],
                                           halves=Halves(recon[0], recon[1], -60.0, 60.0))
    assert 20.0 < columns["halfmap_fsc_resolution_angstrom"] < 320.0
    assert len(curves["halfmap_fsc_missing_curve"]) == min(SHAPE) // 2 + 1
    assert np.isnan(columns["band_fsc_mean"]) and np.isnan(columns["measured_region_fsc_mean"])
