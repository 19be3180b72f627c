"""keep_measured_region: the measured Fourier planes come from the reference, the rest from the volume."""

import numpy as np
import pytest

from cryo_pipeline.ops.data_consistency import keep_measured_region
from cryo_pipeline.ops.fsc import measured_region_mask_3d

ANGLES = np.arange(-60.0, 60.01, 3.0)


def _pair(shape=(15, 6, 17), seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def test_measured_planes_are_the_references_and_the_rest_the_volumes():
    volume, reference = _pair()  # odd d and w: every Fourier voxel has its Hermitian partner in the region
    out = keep_measured_region(volume, reference, ANGLES)
    mask = measured_region_mask_3d(volume.shape, ANGLES)
    assert 0.2 < mask.mean() < 0.9  # both regions are non-trivial
    spectrum = np.fft.fftn(out)
    np.testing.assert_allclose(spectrum[mask], np.fft.fftn(reference)[mask], atol=1e-3)
    np.testing.assert_allclose(spectrum[~mask], np.fft.fftn(volume)[~mask], atol=1e-3)


def test_rows_are_independent_so_slabs_and_blends_are_consistent():
    volume, reference = _pair(seed=1)
    whole = keep_measured_region(volume, reference, ANGLES)
    np.testing.assert_allclose(keep_measured_region(volume[:, 2:5], reference[:, 2:5], ANGLES), whole[:, 2:5],
                               atol=1e-5)
    # a convex blend in y of two consistent volumes is the consistent blend
    other = keep_measured_region(volume * 0.5 + 1.0, reference, ANGLES)
    weight = np.linspace(0.0, 1.0, volume.shape[1])[None, :, None]
    blended = weight * whole + (1 - weight) * other
    direct = keep_measured_region(weight * volume + (1 - weight) * (volume * 0.5 + 1.0), reference, ANGLES)
    np.testing.assert_allclose(blended, direct, atol=1e-5)


def test_a_consistent_volume_is_unchanged_and_the_step_is_idempotent():
    volume, reference = _pair(shape=(16, 4, 16), seed=2)
    np.testing.assert_allclose(keep_measured_region(reference, reference, ANGLES), reference, atol=1e-6)
    once = keep_measured_region(volume, reference, ANGLES)
    np.testing.assert_allclose(keep_measured_region(once, reference, ANGLES), once, atol=1e-5)


def test_shapes_must_match():
    volume, reference = _pair()
    with pytest.raises(ValueError, match="must be equal"):
        keep_measured_region(volume, reference[:, :3], ANGLES)
