"""Reprojection agreement at held-out tilts: NCC and FRC of projected vs measured images."""

import numpy as np
import pytest

from cryo_pipeline.ops.phantoms import make_phantom
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.reprojection import (
    fourier_ring_correlation,
    normalised_cross_correlation,
    reprojection_agreement,
)
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

HELDOUT = np.array([-76.0, -70.0, -64.0, 64.0, 70.0, 76.0])


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("mixed_shapes", shape_zyx=(32, 24, 48), seed=3)


def test_a_volume_reproduces_its_own_projections(phantom):
    images = project_3d(phantom, HELDOUT)
    scores = reprojection_agreement(phantom, images, HELDOUT, pixel_size_angstrom=5.0)
    np.testing.assert_array_equal(scores["angle_deg"], HELDOUT)
    assert np.all(scores["ncc"] > 0.999)
    assert np.all(scores["frc_resolution_angstrom"] == 10.0)  # FRC >= 0.5 up to Nyquist
    assert scores["frc"].shape == (6, 13)


def test_ncc_is_invariant_to_affine_rescaling_and_row_offsets():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((16, 20))
    assert normalised_cross_correlation(image, 3.0 * image + 7.0) == pytest.approx(1.0, abs=1e-12)
    # a per-row offset is the k_x' = 0 line every tilt shares: it does not count
    offsets = rng.standard_normal((16, 1)) * 100
    assert normalised_cross_correlation(image, image + offsets) == pytest.approx(1.0, abs=1e-12)
    assert abs(normalised_cross_correlation(image, rng.standard_normal((16, 20)))) < 0.15
    assert np.isnan(normalised_cross_correlation(np.ones((4, 4)), image[:4, :4]))


def test_frc_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(1)
    curve = fourier_ring_correlation(rng.standard_normal((64, 64)), rng.standard_normal((64, 64)))
    assert curve.shape == (33,)
    assert abs(curve[1:].mean()) < 0.05


def test_a_wedged_reconstruction_agrees_less_at_heldout_tilts_than_a_full_one(phantom):
    working = np.arange(-60.0, 60.5, 2.0)
    full = np.arange(-76.0, 76.5, 2.0)
    shape = phantom.shape
    wedged = weighted_backprojection_3d(project_3d(phantom, working), working, volume_shape_zyx=shape)
    complete = weighted_backprojection_3d(project_3d(phantom, full), full, volume_shape_zyx=shape)
    images = project_3d(phantom, HELDOUT)
    ncc_wedged = reprojection_agreement(wedged, images, HELDOUT, pixel_size_angstrom=1.0)["ncc"]
    ncc_full = reprojection_agreement(complete, images, HELDOUT, pixel_size_angstrom=1.0)["ncc"]
    assert np.all(ncc_full > 0.97) and np.all(ncc_full > ncc_wedged)
    # the farther from the working range, the less the wedged reconstruction knows
    assert np.all(ncc_full[[0, -1]] > ncc_wedged[[0, -1]] + 0.3)


def test_mismatched_inputs_are_rejected(phantom):
    images = project_3d(phantom, HELDOUT)
    with pytest.raises(ValueError, match="one angle each"):
        reprojection_agreement(phantom, images, HELDOUT[:3], pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="y size"):
        reprojection_agreement(phantom[:, :10], images, HELDOUT, pixel_size_angstrom=1.0)
