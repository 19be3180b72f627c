"""Tests for Fourier cropping / padding (anti-aliased binning)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cryo_pipeline.ops.binning import (
    bin_volume_3d,
    binned_shape_3d,
    binned_voxel_size_angstrom,
    fourier_rescale_3d,
)
from cryo_pipeline.ops.fourier import fftfreq_grid_3d


def _band_limited_phantom(shape, *, cutoff: float, seed: int = 0, box_low_cut: float = -1.0) -> np.ndarray:
    """Real volume, spectrum random where ``|k| < cutoff`` and ``max_i |k_i| > box_low_cut``."""
    rng = np.random.default_rng(seed)
    kz, ky, kx = fftfreq_grid_3d(shape)
    radius = np.sqrt(kz**2 + ky**2 + kx**2)
    spec = np.fft.fftn(rng.standard_normal(shape)) * (radius < cutoff)
    spec *= np.maximum(np.maximum(abs(kz), abs(ky)), abs(kx)) > box_low_cut
    vol = np.real(np.fft.ifftn(spec))  # real part = Hermitian part, still band-limited
    return (vol / vol.std()).astype(np.float64)


def _fsc(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier shell correlation per shell of width 1/n (cubic volumes); (freq, fsc)."""
    n = a.shape[0]
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    kz, ky, kx = fftfreq_grid_3d(a.shape)
    shell = np.rint(np.sqrt(kz**2 + ky**2 + kx**2) * n).astype(int).ravel()
    num = np.bincount(shell, np.real(fa * np.conj(fb)).ravel())
    den = np.sqrt(np.bincount(shell, (np.abs(fa) ** 2).ravel()) * np.bincount(shell, (np.abs(fb) ** 2).ravel()))
    return np.arange(num.size) / n, num / np.maximum(den, 1e-30)


def _reference_resample(vol: np.ndarray, shape_out) -> np.ndarray:
    """scipy.signal.resample along each axis in turn (same Nyquist handling, mean kept)."""
    out = vol.astype(np.float64)
    for axis, m in enumerate(shape_out):
        out = scipy.signal.resample(out, m, axis=axis)
    return out


def _full_complex_rescale(vol: np.ndarray, shape_out) -> np.ndarray:
    """Independent full-complex implementation on the centred (fftshift) spectrum."""
    spec = np.fft.fftshift(np.fft.fftn(vol.astype(np.float64)))
    for axis, m in enumerate(shape_out):
        n = spec.shape[axis]
        k_in = np.arange(n) - n // 2  # centred bin of each index
        k_out = np.arange(m) - m // 2
        w = np.zeros((m, n))
        for i, k in enumerate(k_in):
            if n == m:
                w[i, i] = 1.0
            elif n > m:  # crop, sum the two bins that alias onto the output Nyquist
                if abs(k) < m / 2 or (m % 2 == 0 and abs(k) == m // 2):
                    w[(k + m // 2) % m, i] = 1.0
            elif n % 2 == 0 and k == -(n // 2):  # pad, split the input Nyquist
                w[np.searchsorted(k_out, -k), i] = w[np.searchsorted(k_out, k), i] = 0.5
            else:
                w[np.searchsorted(k_out, k), i] = 1.0
        spec = np.moveaxis(np.tensordot(w, np.moveaxis(spec, axis, 0), axes=1), 0, axis)
    out = np.fft.ifftn(np.fft.ifftshift(spec)) * (np.prod(shape_out) / vol.size)
    return out


@pytest.mark.parametrize("factor", [2, 1.5, 3, 0.5, 1])
@pytest.mark.parametrize("n", [64, 65])
def test_constant_stays_constant(factor, n):
    vol = np.full((n, n - 1, n + 2), 3.25, dtype=np.float32)
    out = bin_volume_3d(vol, factor=factor)
    assert out.dtype == np.float32
    assert out.shape == binned_shape_3d(vol.shape, factor=factor)
    np.testing.assert_allclose(out, 3.25, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 31, 30), (65, 65, 65)])
def test_band_limited_phantom_survives_bin_by_2_and_back(shape):
    phantom = _band_limited_phantom(shape, cutoff=0.2)
    down = bin_volume_3d(phantom, factor=2)
    back = fourier_rescale_3d(down.astype(np.float64), shape_zyx_out=shape)
    rel = np.linalg.norm(back - phantom) / np.linalg.norm(phantom)
    assert rel < 1e-4
    if len(set(shape)) == 1:
        freq, fsc = _fsc(back.astype(np.float64), phantom)
        assert np.all(fsc[(freq > 0) & (freq < 0.2)] > 0.99)
    np.testing.assert_allclose(down.mean(), phantom.mean(), atol=1e-6)


def test_binning_removes_frequencies_above_new_nyquist():
    shape = (32, 32, 32)
    # everything outside the kept cube |k_i| <= 0.25 of a bin-by-2 crop
    high = 3.0 * _band_limited_phantom(shape, cutoff=1.0, box_low_cut=0.26, seed=3)
    low = _band_limited_phantom(shape, cutoff=0.2, seed=4)
    back = fourier_rescale_3d(bin_volume_3d(low + high, factor=2), shape_zyx_out=shape)
    # the low band is kept and the (stronger) high band is removed, not aliased into it
    assert np.linalg.norm(back - low) / np.linalg.norm(low) < 1e-4


@pytest.mark.parametrize(
    "shape_in, shape_out",
    [
        ((16, 16, 16), (8, 8, 8)),
        ((17, 15, 16), (9, 8, 7)),
        ((16, 15, 17), (20, 21, 24)),
        ((12, 13, 14), (12, 20, 7)),
        ((15, 14, 16), (22, 9, 25)),
        ((14, 17, 18), (9, 24, 12)),
    ],
)
def test_matches_independent_implementations_and_is_real(shape_in, shape_out):
    vol = np.random.default_rng(5).standard_normal(shape_in)
    out = fourier_rescale_3d(vol, shape_zyx_out=shape_out)
    assert out.shape == shape_out and out.dtype == np.float32
    ref = _full_complex_rescale(vol, shape_out)
    assert np.max(np.abs(ref.imag)) < 1e-10  # Hermitian symmetry kept: real in, real out
    np.testing.assert_allclose(out, ref.real, atol=1e-5)
    np.testing.assert_allclose(out, _reference_resample(vol, shape_out), atol=1e-5)


@pytest.mark.parametrize("shape_in, shape_small", [((16, 17, 18), (8, 9, 10)), ((15, 16, 21), (10, 11, 7))])
def test_down_then_up_is_a_projection_and_down_undoes_up(shape_in, shape_small):
    vol = np.random.default_rng(6).standard_normal(shape_in)

    def project(v):
        small = fourier_rescale_3d(v, shape_zyx_out=shape_small).astype(np.float64)
        return fourier_rescale_3d(small, shape_zyx_out=shape_in).astype(np.float64)

    once = project(vol)
    np.testing.assert_allclose(project(once), once, atol=1e-5)
    assert np.linalg.norm(once - vol) > 0.1 * np.linalg.norm(vol)  # it did remove something
    small = np.random.default_rng(7).standard_normal(shape_small)
    up = fourier_rescale_3d(small, shape_zyx_out=shape_in).astype(np.float64)
    np.testing.assert_allclose(fourier_rescale_3d(up, shape_zyx_out=shape_small), small, atol=1e-5)


@pytest.mark.parametrize(
    "shape, factor, expected",
    [
        ((64, 64, 64), 2, (32, 32, 32)),
        ((65, 64, 63), 2, (33, 32, 32)),
        ((90, 60, 30), 1.5, (60, 40, 20)),
        ((64, 65, 66), 3, (21, 22, 22)),
        ((10, 11, 12), 0.5, (20, 22, 24)),
        ((5, 6, 7), 1, (5, 6, 7)),
    ],
)
def test_output_shapes(shape, factor, expected):
    assert binned_shape_3d(shape, factor=factor) == expected
    assert bin_volume_3d(np.zeros(shape, dtype=np.float32), factor=factor).shape == expected


def test_factor_one_returns_a_float32_copy():
    vol = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    out = bin_volume_3d(vol, factor=1)
    assert out.dtype == np.float32 and not np.shares_memory(out, vol)
    np.testing.assert_array_equal(out, vol)


@pytest.mark.parametrize("factor", [0, -2, float("nan"), float("inf")])
def test_bad_factor_errors_name_it(factor):
    with pytest.raises(ValueError, match=f"factor {factor}|got {factor}"):
        bin_volume_3d(np.zeros((8, 8, 8)), factor=factor)


def test_too_large_factor_names_factor():
    with pytest.raises(ValueError, match="binning factor 20 is too large"):
        bin_volume_3d(np.zeros((8, 16, 16)), factor=20)


def test_bad_inputs():
    with pytest.raises(ValueError, match="3D"):
        bin_volume_3d(np.zeros((8, 8)), factor=2)
    with pytest.raises(ValueError, match="real"):
        fourier_rescale_3d(np.zeros((4, 4, 4), dtype=complex), shape_zyx_out=(2, 2, 2))
    with pytest.raises(ValueError, match="dimension < 1"):
        fourier_rescale_3d(np.zeros((4, 4, 4)), shape_zyx_out=(2, 0, 2))
    with pytest.raises(ValueError, match="three integers"):
        fourier_rescale_3d(np.zeros((4, 4, 4)), shape_zyx_out=(2, 2))
    with pytest.raises(TypeError):
        bin_volume_3d(np.zeros((4, 4, 4)), factor="2")  # type: ignore[arg-type]


def test_binned_voxel_size():
    assert binned_voxel_size_angstrom(2.0, 64, 32) == pytest.approx(4.0)
    assert binned_voxel_size_angstrom(2.0, (65, 64, 90), (33, 32, 60)) == pytest.approx((2 * 65 / 33, 4.0, 3.0))
    with pytest.raises(ValueError):
        binned_voxel_size_angstrom(0.0, 64, 32)
