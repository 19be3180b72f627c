"""Spectral-bandwidth isotropy: Gaussians with known widths, and the missing wedge."""

import numpy as np
import pytest

from cryo_pipeline.ops.isotropy import isotropy_z_x, spectral_bandwidths
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d


def _gaussian(shape, sigma_zyx):
    z, y, x = np.meshgrid(*(np.arange(n) - n // 2 for n in shape), indexing="ij")
    sz, sy, sx = sigma_zyx
    return np.exp(-0.5 * ((z / sz) ** 2 + (y / sy) ** 2 + (x / sx) ** 2))


def test_isotropic_gaussian_gives_one():
    assert isotropy_z_x(_gaussian((48, 48, 48), (2.0, 2.0, 2.0))) == pytest.approx(1.0, abs=1e-6)


def test_gaussian_stretched_along_z_gives_the_inverse_stretch():
    # B ∝ 1/sigma for a Gaussian (its spectrum is a Gaussian of width 1/(2 pi sigma))
    blob = _gaussian((64, 64, 64), (3.0, 1.5, 1.5))
    assert isotropy_z_x(blob) == pytest.approx(0.5, abs=0.01)
    bandwidth = spectral_bandwidths(blob)
    assert bandwidth["y"] == pytest.approx(bandwidth["x"], rel=1e-9)


def test_missing_wedge_lowers_isotropy_and_wider_tilt_ranges_less():
    noise = np.random.default_rng(0).standard_normal((48, 48, 48))
    assert isotropy_z_x(noise) == pytest.approx(1.0, abs=0.02)
    narrow = isotropy_z_x(apply_missing_wedge_3d(noise, tilt_min_deg=-45, tilt_max_deg=45))
    wide = isotropy_z_x(apply_missing_wedge_3d(noise, tilt_min_deg=-70, tilt_max_deg=70))
    assert narrow < wide < 0.98


def test_constant_volume_has_no_bandwidth():
    assert np.isnan(isotropy_z_x(np.ones((8, 8, 8))))
    with pytest.raises(ValueError, match="3D"):
        spectral_bandwidths(np.ones((8, 8)))
