"""SIRT: convergence on noiseless data, non-negativity, and the better reference it gives."""

import numpy as np
import pytest

from cryo_pipeline.ops.metrics import psnr_db
from cryo_pipeline.ops.noise import add_gaussian_noise
from cryo_pipeline.ops.phantoms import make_phantom
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.sirt import sirt_3d
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

ANGLES = np.arange(-76.0, 76.5, 2.0)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("mixed_shapes", shape_zyx=(24, 18, 32), seed=1)


def test_sirt_reduces_the_projection_residual(phantom):
    series = project_3d(phantom, ANGLES)
    residuals = []
    for iterations in (1, 5, 50):
        volume = sirt_3d(series, ANGLES, volume_shape_zyx=phantom.shape, iterations=iterations)
        residuals.append(np.linalg.norm(project_3d(volume, ANGLES) - series) / np.linalg.norm(series))
    assert residuals[0] > residuals[1] > residuals[2]
    assert residuals[2] < 0.5 * residuals[0]


def test_nonnegative_sirt_stays_nonnegative_and_beats_wbp_on_a_noisy_phantom(phantom):
    series = add_gaussian_noise(project_3d(phantom, ANGLES), snr=5, seed=0)
    sirt = sirt_3d(series, ANGLES, volume_shape_zyx=phantom.shape, iterations=50)
    wbp = weighted_backprojection_3d(series, ANGLES, volume_shape_zyx=phantom.shape)
    assert sirt.min() >= 0.0 and sirt.dtype == np.float32
    assert psnr_db(sirt, phantom) > psnr_db(wbp, phantom) + 2.0


def test_sirt_rejects_bad_input(phantom):
    series = project_3d(phantom, ANGLES)
    with pytest.raises(ValueError, match="at least 1 iteration"):
        sirt_3d(series, ANGLES, volume_shape_zyx=phantom.shape, iterations=0)
    with pytest.raises(ValueError, match="do not match tilt images"):
        sirt_3d(series, ANGLES[:-1], volume_shape_zyx=phantom.shape, iterations=1)
