"""CTF and IsoNet-equivalent Wiener-like deconvolution of a tomogram (peers.md §1a).

Conventions
-----------
* ``x`` is spatial frequency as a fraction of Nyquist, sampled at
  ``x = linspace(0, 1, n_points)``; ``k = x / (2 · pixel_size)`` in 1/Å.
* Defocus is **underfocus positive** (the dataset sheet's convention). In the phase
  formula it enters as Δf = −defocus (TOM/IsoNet convention: underfocus negative).
* Cs in mm (× 1e7 → Å), wavelength λ in Å, phase shift in degrees (→ radians).

Formulas::

    λ      = 12.2643247 / sqrt(V (1 + 0.978466e-6 V))          V in volts
    w(k)   = π/2 · (Cs λ³ k⁴ + 2 λ Δf k²) − phase_shift
    CTF    = −sqrt(1 − A²) · sin w + A · cos w                  (|CTF| if phase-flipped)
    hp(x)  = 1 − cos(π · min(1, x / highpass_nyquist))
    SNR(x) = exp(−x · snr_falloff · 100 / pixel) · 10^deconv_strength · hp(x) + 1e-6
    F(x)   = CTF / (CTF² + 1/SNR)

The 1D filter is applied radially in 3D
(:func:`~cryo_pipeline.ops.radial_filter.radial_filter_3d`, re-exported here) and the result is
rescaled to the input's mean and standard deviation. Differences from IsoNet v0.2 (by
design): IsoNet evaluates the CTF at ``x = i/n`` but SNR and the interpolation grid at
``x = i/(n−1)`` (a 0.05 % frequency offset) — here both use one grid; IsoNet divides by
the output's std without subtracting its (≈ 0) mean — here the mean is matched exactly;
chunked mode blends overlapping chunks and normalises once, globally
(:func:`deconvolve_chunked`), where IsoNet hard-crops and renormalises per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cryo_pipeline.ops.radial_filter import LOW_BAND_NYQUIST, filter_volume, filter_volume_chunked, radial_filter_3d

__all__ = [
    "ctf_1d",
    "deconvolve_chunked",
    "deconvolve_volume",
    "electron_wavelength_angstrom",
    "radial_filter_3d",
    "wiener_filter_1d",
]


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å (300 kV → 0.019687 Å)."""
    if not voltage_kv > 0:
        raise ValueError(f"voltage_kv must be > 0, got {voltage_kv}")
    volts = float(voltage_kv) * 1e3
    return 12.2643247 / np.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def ctf_1d(
    n_points: int = 2048,
    *,
    pixel_size_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    defocus_angstrom: float,
    amplitude_contrast: float = 0.07,
    phase_shift_deg: float = 0.0,
    phase_flipped: bool = False,
) -> np.ndarray:
    """Radial CTF from 0 to Nyquist (no envelope, B-factor 0).

    Parameters
    ----------
    n_points : int
        Samples at ``x = linspace(0, 1, n_points)`` of Nyquist.
    pixel_size_angstrom : float
        Voxel size (Å); Nyquist is ``1/(2·pixel)`` Å⁻¹.
    voltage_kv, cs_mm : float
        Acceleration voltage (kV) and spherical aberration (mm).
    defocus_angstrom : float
        Defocus, underfocus positive (Δf = −defocus in the phase).
    amplitude_contrast : float
        Amplitude contrast fraction A in [0, 1).
    phase_shift_deg : float
        Phase-plate shift, subtracted from the phase w.
    phase_flipped : bool
        Return |CTF| (data reconstructed from phase-flipped images).

    Returns
    -------
    numpy.ndarray
        ``(n_points,)`` float64 CTF; see the module docstring for the formula.
    """
    if n_points < 2 or not pixel_size_angstrom > 0:
        raise ValueError(f"need n_points >= 2 and pixel_size_angstrom > 0, got {n_points}, {pixel_size_angstrom}")
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ValueError(f"amplitude_contrast must be in [0, 1), got {amplitude_contrast}")
    wavelength = electron_wavelength_angstrom(voltage_kv)
    k = np.linspace(0.0, 1.0, int(n_points)) / (2.0 * float(pixel_size_angstrom))
    cs_angstrom = float(cs_mm) * 1e7
    delta_f = -float(defocus_angstrom)
    w = 0.5 * np.pi * (cs_angstrom * wavelength**3 * k**4 + 2.0 * wavelength * delta_f * k**2)
    w -= np.deg2rad(phase_shift_deg)
    ctf = -np.sqrt(1.0 - amplitude_contrast**2) * np.sin(w) + amplitude_contrast * np.cos(w)
    return np.abs(ctf) if phase_flipped else ctf


def wiener_filter_1d(
    n_points: int = 2048,
    *,
    pixel_size_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    defocus_angstrom: float,
    snr_falloff: float,
    deconv_strength: float,
    highpass_nyquist: float,
    amplitude_contrast: float = 0.07,
    phase_shift_deg: float = 0.0,
    phase_flipped: bool = False,
) -> np.ndarray:
    """IsoNet's Wiener-like filter F = CTF / (CTF² + 1/SNR) on ``linspace(0, 1, n_points)``.

    Parameters
    ----------
    snr_falloff : float
        SNR fall-off with frequency (IsoNet ``snrfalloff``).
    deconv_strength : float
        log10 of the low-frequency SNR (IsoNet ``deconvstrength``).
    highpass_nyquist : float
        High-pass cut as a fraction of Nyquist (> 0; IsoNet default 0.02).
    others
        As :func:`ctf_1d`.

    Returns
    -------
    numpy.ndarray
        ``(n_points,)`` float64 filter; F(0) ≈ 0 (the high-pass removes the mean).
    """
    if not highpass_nyquist > 0:
        raise ValueError(f"highpass_nyquist must be > 0, got {highpass_nyquist}")
    ctf = ctf_1d(n_points, pixel_size_angstrom=pixel_size_angstrom, voltage_kv=voltage_kv, cs_mm=cs_mm,
                 defocus_angstrom=defocus_angstrom, amplitude_contrast=amplitude_contrast,
                 phase_shift_deg=phase_shift_deg, phase_flipped=phase_flipped)
    x = np.linspace(0.0, 1.0, int(n_points))
    highpass = 1.0 - np.cos(np.pi * np.minimum(1.0, x / highpass_nyquist))
    snr = np.exp(-x * snr_falloff * 100.0 / pixel_size_angstrom) * 10.0**deconv_strength * highpass + 1e-6
    return ctf / (ctf**2 + 1.0 / snr)


def deconvolve_volume(volume: np.ndarray, filter_1d: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """Whole-volume deconvolution: real(ifftn(fftn(v)·F(r))) rescaled to v's mean and std.

    Parameters
    ----------
    volume : `(d, h, w)` array
        Tomogram.
    filter_1d : `(n_points,)` array
        From :func:`wiener_filter_1d`.
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    numpy.ndarray
        `(d, h, w)` float32 with the input's mean and standard deviation.
    """
    return filter_volume(volume, filter_1d, match_mean_std=True, workers=workers)


def deconvolve_chunked(
    volume: np.ndarray,
    filter_1d: np.ndarray,
    *,
    chunk_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    halo_px: int | Sequence[int],
    out: np.ndarray | None = None,
    low_band_nyquist: tuple[float, float] | None = LOW_BAND_NYQUIST,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Memory-bounded :func:`deconvolve_volume`: overlapping chunks, blended, one global rescale.

    Each chunk is filtered with ``halo_px`` of wrap-around context (matching the
    whole-volume FFT's periodic boundary) using the filter sampled at the padded
    chunk's shape; the halo is discarded and the cores are blended with the shared
    window (:mod:`cryo_pipeline.ops.blending`). The output is then rescaled to the
    input's mean and std in streaming passes, never per chunk (IsoNet's seams). The
    filter's lowest band (below ``low_band_nyquist``) is applied exactly from the whole
    volume's low-frequency coefficients, because the high-pass at 0.02 Nyquist gives the
    filter a ~100-voxel kernel that no reasonable halo covers; details in
    :func:`~cryo_pipeline.ops.radial_filter.filter_volume_chunked`. No temp folder.

    Parameters
    ----------
    volume : `(d, h, w)` array or read-only ``np.memmap``
        Tomogram (any real dtype).
    filter_1d : `(n_points,)` array
        From :func:`wiener_filter_1d`.
    chunk_px, overlap_px, halo_px : int or (z, y, x)
        Chunk edge (clipped to the volume), overlap of neighbours, filtered context.
    out : `(d, h, w)` float32 array or writable ``np.memmap``, optional
        Destination (overwritten); a new array if None.
    low_band_nyquist : (r1, r2) or None
        Exact low band below r2 (cos² cross-over from r1), fractions of Nyquist; None =
        chunks only (then the halo must be ~100+ voxels for 1e-3 agreement).
    workers : int, optional
        Threads for ``scipy.fft``.
    progress : callable, optional
        ``progress(done, total)`` after every chunk.

    Returns
    -------
    numpy.ndarray
        ``out``: `(d, h, w)` float32 with the input's mean and standard deviation.
    """
    return filter_volume_chunked(volume, filter_1d, chunk_px=chunk_px, overlap_px=overlap_px, halo_px=halo_px,
                                 out=out, match_mean_std=True, low_band_nyquist=low_band_nyquist,
                                 workers=workers, progress=progress)
