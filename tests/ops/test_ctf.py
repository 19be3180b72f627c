"""CTF, IsoNet's Wiener-like filter, its 3D application, and chunked vs whole deconvolution."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from cryo_pipeline.ops.ctf import (
    ctf_1d,
    deconvolve_chunked,
    deconvolve_volume,
    electron_wavelength_angstrom,
    radial_filter_3d,
    wiener_filter_1d,
)
from cryo_pipeline.ops.blending import tile_origins_1d

SETTINGS = [  # (pixel Å, defocus Å, snr_falloff, deconv_strength, voltage kV, Cs mm, highpass)
    (10.0, 30000.0, 1.0, 1.0, 300.0, 2.7, 0.02),
    (10.8, 38000.0, 0.7, 1.0, 300.0, 2.7, 0.02),
    (5.4, 15000.0, 1.2, 0.5, 200.0, 2.0, 0.05),
    (2.0, 8000.0, 0.3, -0.5, 300.0, 0.01, 0.01),
]
FILTER = {"pixel_size_angstrom": 10.0, "voltage_kv": 300.0, "cs_mm": 2.7, "defocus_angstrom": 30000.0,
          "snr_falloff": 1.0, "deconv_strength": 1.0, "highpass_nyquist": 0.02}


def tomogram_like(shape, seed=0, *, blobs=3.0, noise=0.5):
    """Smooth random structure (σ = 2 voxels, std 1), sparse dense blobs and white noise (given stds)."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0, mode="wrap")
    dots = ndi.gaussian_filter((rng.random(shape) < 0.002).astype(np.float32), 3.0, mode="wrap")
    white = rng.standard_normal(shape).astype(np.float32)
    return (smooth / smooth.std() + blobs * dots / dots.std() + noise * white + 5.0).astype(np.float32)


def relative_rms(a, b):
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)) / np.std(b))


# --- wavelength and CTF -------------------------------------------------------------------
def test_wavelength_300kv_and_200kv():
    assert electron_wavelength_angstrom(300) == pytest.approx(0.019687, abs=1e-5)
    assert electron_wavelength_angstrom(200) == pytest.approx(0.025079, abs=1e-5)
    with pytest.raises(ValueError, match=r"voltage_kv must be > 0, got 0"):
        electron_wavelength_angstrom(0)


@pytest.mark.parametrize(("pixel", "defocus", "falloff", "strength", "kv", "cs", "highpass"), SETTINGS)
def test_wiener_filter_matches_the_isonet_formula(pixel, defocus, falloff, strength, kv, cs, highpass):
    # Independent, literal evaluation of peers.md §1a (defocus underfocus-positive in our sheet).
    x = np.arange(2048) / 2047.0
    k = x / (2.0 * pixel)
    volts = kv * 1000.0
    lam = 12.2643247 / np.sqrt(volts * (1.0 + 0.978466e-6 * volts))
    w = np.pi / 2.0 * ((cs * 1e7) * lam**3 * k**4 + 2.0 * lam * (-defocus) * k**2) - 0.0
    ctf = -np.sqrt(1.0 - 0.07**2) * np.sin(w) + 0.07 * np.cos(w)
    hp = 1.0 - np.cos(np.pi * np.minimum(1.0, x / highpass))
    snr = np.exp(-x * falloff * 100.0 / pixel) * 10.0**strength * hp + 1e-6
    expected = ctf / (ctf**2 + 1.0 / snr)

    got = wiener_filter_1d(2048, pixel_size_angstrom=pixel, voltage_kv=kv, cs_mm=cs, defocus_angstrom=defocus,
                           snr_falloff=falloff, deconv_strength=strength, highpass_nyquist=highpass)
    assert got.shape == (2048,)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert abs(got[0]) < 1e-4  # the high-pass removes the mean


@pytest.mark.parametrize(("amplitude", "phase_deg"), [(0.0, 0.0), (0.07, 0.0), (0.1, 90.0), (0.07, 30.0)])
def test_first_ctf_zero_is_at_the_analytic_position_for_cs_zero(amplitude, phase_deg):
    # Cs = 0: w = -π λ D k² - φ and CTF = -sin(w - α) with α = asin(A), so the first zero
    # (w = α - π) is at k² = (π - α - φ) / (π λ D); for A = φ = 0, k² = 1/(λ D).
    pixel, defocus = 5.0, 20000.0
    lam = electron_wavelength_angstrom(300)
    alpha, phi = np.arcsin(amplitude), np.deg2rad(phase_deg)
    k_zero = np.sqrt((np.pi - alpha - phi) / (np.pi * lam * defocus))
    n = 200001
    ctf = ctf_1d(n, pixel_size_angstrom=pixel, voltage_kv=300, cs_mm=0.0, defocus_angstrom=defocus,
                 amplitude_contrast=amplitude, phase_shift_deg=phase_deg)
    k = np.linspace(0, 1, n) / (2 * pixel)
    first = 1 + np.flatnonzero(np.sign(ctf[2:]) != np.sign(ctf[1:-1]))[0]  # skip DC (0 when A = φ = 0)
    assert k[first] <= k_zero <= k[first + 1]
    if amplitude == 0 and phase_deg == 0:
        assert k_zero == pytest.approx(1 / np.sqrt(lam * defocus), rel=1e-12)


def test_ctf_at_dc_and_underfocus_sign():
    ctf = ctf_1d(2048, pixel_size_angstrom=10, voltage_kv=300, cs_mm=2.7, defocus_angstrom=30000)
    assert ctf[0] == pytest.approx(0.07)
    assert ctf[1] > ctf[0]  # underfocus (positive) raises the CTF from A at low frequency


def test_phase_flipped_is_the_absolute_ctf():
    kwargs = {"pixel_size_angstrom": 4.0, "voltage_kv": 300, "cs_mm": 2.7, "defocus_angstrom": 25000}
    ctf = ctf_1d(512, **kwargs)
    flipped = ctf_1d(512, **kwargs, phase_flipped=True)
    assert np.any(ctf < 0)
    np.testing.assert_array_equal(flipped, np.abs(ctf))
    wiener = wiener_filter_1d(512, **kwargs, snr_falloff=1, deconv_strength=1, highpass_nyquist=0.02,
                              phase_flipped=True)
    assert np.all(wiener >= 0)


def test_ctf_errors_name_the_values():
    with pytest.raises(ValueError, match=r"amplitude_contrast must be in \[0, 1\), got 1.5"):
        ctf_1d(pixel_size_angstrom=1, voltage_kv=300, cs_mm=2.7, defocus_angstrom=1e4, amplitude_contrast=1.5)
    with pytest.raises(ValueError, match=r"highpass_nyquist must be > 0, got 0"):
        wiener_filter_1d(**{**FILTER, "highpass_nyquist": 0})


# --- 3D application -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 10, 12), (7, 9, 11), (1, 6, 5)])
def test_radial_filter_3d_matches_isonets_shifted_grid(shape):
    filt = np.cos(np.linspace(0, 3, 2048)) + np.linspace(0, 1, 2048) ** 2
    axes = []
    for i, n in enumerate(shape):
        s = -(n // 2)
        coord = np.arange(s, s + n, dtype=np.float64) / max(1, abs(s))
        axes.append(coord.reshape([-1 if j == i else 1 for j in range(3)]))
    r = np.minimum(1.0, np.sqrt(axes[0] ** 2 + axes[1] ** 2 + axes[2] ** 2))
    expected = np.fft.ifftshift(np.interp(r, np.linspace(0, 1, 2048), filt))
    got = radial_filter_3d(shape, filt)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert got[0, 0, 0] == pytest.approx(filt[0])
    np.testing.assert_array_equal(radial_filter_3d(shape, filt, rfft=True), got[..., : shape[2] // 2 + 1])


def test_deconvolve_volume_matches_full_fft_and_keeps_mean_std():
    volume = tomogram_like((24, 40, 36))
    before = volume.copy()
    filt = wiener_filter_1d(**FILTER)
    out = deconvolve_volume(volume, filt)
    np.testing.assert_array_equal(volume, before)  # the input is left alone
    assert out.dtype == np.float32 and out.shape == volume.shape
    assert out.mean(dtype=np.float64) == pytest.approx(volume.mean(dtype=np.float64), rel=1e-5)
    assert out.std(dtype=np.float64) == pytest.approx(volume.std(dtype=np.float64), rel=1e-5)
    raw = np.real(np.fft.ifftn(np.fft.fftn(volume.astype(np.float64)) * radial_filter_3d(volume.shape, filt)))
    expected = (raw - raw.mean()) / raw.std() * volume.std(dtype=np.float64) + volume.mean(dtype=np.float64)
    np.testing.assert_allclose(out, expected, atol=1e-4 * volume.std())
    assert relative_rms(out, volume) > 0.1  # it did something


# --- chunked ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tomogram():
    volume = tomogram_like((64, 200, 232))
    filt = wiener_filter_1d(**FILTER)
    return volume, filt, deconvolve_volume(volume, filt)


def test_chunked_equals_whole_volume(tomogram):
    volume, filt, whole = tomogram
    chunked = deconvolve_chunked(volume, filt, chunk_px=64, overlap_px=16, halo_px=48)
    assert chunked.dtype == np.float32
    assert relative_rms(chunked, whole) < 1e-3
    assert chunked.mean(dtype=np.float64) == pytest.approx(volume.mean(dtype=np.float64), rel=1e-5)
    assert chunked.std(dtype=np.float64) == pytest.approx(volume.std(dtype=np.float64), rel=1e-5)


def test_chunked_along_every_axis_with_a_small_halo():
    volume = tomogram_like((96, 176, 208), seed=1)
    filt = wiener_filter_1d(**FILTER)
    chunked = deconvolve_chunked(volume, filt, chunk_px=64, overlap_px=16, halo_px=16)
    assert relative_rms(chunked, deconvolve_volume(volume, filt)) < 1e-3


def test_halo_alone_falls_short_which_is_why_the_low_band_is_exact(tomogram):
    volume, filt, whole = tomogram
    halo_only = deconvolve_chunked(volume, filt, chunk_px=64, overlap_px=16, halo_px=48, low_band_nyquist=None)
    split = deconvolve_chunked(volume, filt, chunk_px=64, overlap_px=16, halo_px=48)
    assert relative_rms(halo_only, whole) > 10 * relative_rms(split, whole)


def _border_ratio(volume, *, chunk, overlap):
    """Mean |v[i+1] − v[i]| across the chunk borders in y and x / the same elsewhere."""
    at, away = [], []
    for axis in (1, 2):
        n = volume.shape[axis]
        per_plane = np.abs(np.diff(volume.astype(np.float64), axis=axis)).mean(axis=tuple({0, 1, 2} - {axis}))
        origins = tile_origins_1d(n, tile=chunk, overlap=overlap)
        borders = np.unique(np.r_[origins[1:] - 1, origins[:-1] + chunk - 1])  # last voxel before a border
        at.extend(per_plane[borders])
        away.extend(np.delete(per_plane, borders))
    return float(np.mean(at) / np.mean(away))


@pytest.mark.parametrize("seed", [0, 1])
def test_no_seams_at_chunk_borders(seed):
    chunk, overlap = 64, 16
    volume = tomogram_like((64, 200, 232), seed, blobs=0.5, noise=2.0)  # noise-dominated, like a tomogram
    filt = wiener_filter_1d(**FILTER)
    ours = deconvolve_chunked(volume, filt, chunk_px=chunk, overlap_px=overlap, halo_px=48)
    assert _border_ratio(ours, chunk=chunk, overlap=overlap) == pytest.approx(1.0, abs=0.05)
    whole = _border_ratio(deconvolve_volume(volume, filt), chunk=chunk, overlap=overlap)
    assert _border_ratio(ours, chunk=chunk, overlap=overlap) == pytest.approx(whole, abs=0.005)
    # The metric does see seams: IsoNet-style cubes (no halo, own normalisation, hard-cropped) give ~1.6.
    isonet = np.empty_like(volume)
    for y in tile_origins_1d(volume.shape[1], tile=chunk, overlap=overlap):
        for x in tile_origins_1d(volume.shape[2], tile=chunk, overlap=overlap):
            isonet[:, y : y + chunk, x : x + chunk] = deconvolve_volume(volume[:, y : y + chunk, x : x + chunk], filt)
    assert _border_ratio(isonet, chunk=chunk, overlap=overlap) > 1.3


def test_chunked_streams_between_memmaps(tmp_path, tomogram):
    volume, filt, whole = tomogram
    np.save(tmp_path / "in.npy", volume)
    source = np.load(tmp_path / "in.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=volume.shape)
    result = deconvolve_chunked(source, filt, chunk_px=96, overlap_px=16, halo_px=32, out=out)
    assert result is out
    out.flush()
    assert relative_rms(np.load(tmp_path / "out.npy"), whole) < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


def test_chunked_errors():
    filt = wiener_filter_1d(**FILTER)
    volume = np.zeros((8, 40, 40), dtype=np.float32)
    with pytest.raises(ValueError, match=r"overlap_px \(16, 16, 16\) must be smaller than chunk_px \(16, 16, 16\)"):
        deconvolve_chunked(volume, filt, chunk_px=16, overlap_px=16, halo_px=8)
    volume[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf"):
        deconvolve_chunked(volume, filt, chunk_px=16, overlap_px=4, halo_px=8)
    with pytest.raises(ValueError, match=r"low_band_nyquist must be \(r1, r2\) with 0 <= r1 < r2 < 1, got \(0.3, 0.1"):
        deconvolve_chunked(np.ones((8, 40, 40)), filt, chunk_px=16, overlap_px=4, halo_px=8,
                           low_band_nyquist=(0.3, 0.1))
