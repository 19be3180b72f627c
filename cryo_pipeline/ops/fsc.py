"""Fourier shell correlation, its resolution, and the CN paper's directional FSC.

Shells are one Fourier voxel thick (:func:`cryo_pipeline.ops.fourier.shell_index_3d`:
radius on the grid of the smallest axis, rounded), from DC (shell 0) to Nyquist
(``min(shape) // 2``). The correlation is the real part of the normalised cross
power, with no mean subtraction (CN paper §3.6.1)::

    FSC(k) = Re Σ_k A·B* / sqrt(Σ_k |A|² · Σ_k |B|²)

A shell where either volume has (numerically) no power gets FSC 0: nothing
correlates there. "No power" means below 1e-12 of what the shell would hold at the
volume's average power per voxel, so float32 round-off left in a zeroed region (e.g.
by :func:`cryo_pipeline.ops.wedge.apply_missing_wedge_3d`) does not produce random
correlations. A shell with no voxels in a region (directional FSC) gets NaN. The sums come
from one half spectrum per volume (:mod:`cryo_pipeline.ops.fourier_shells`), shared by every
score of :func:`fsc_metrics` including the wedge fill.

Directional FSC (CN paper §3.6.1): a Fourier voxel is *measured* when it lies within
half a voxel (index units per axis, fftfreq·n) of the plane of an acquired
projection; the plane at tilt θ has the ray direction (cos θ, 0, sin θ) in
(k_z, k_y, k_x) as its normal. Everything else is *missing*. With a finite number of
tilts the missing region also holds the gaps between neighbouring planes at high
frequency (where radius × angular step > 1 voxel); that is the paper's definition.
To score a pure Fourier-zeroed wedge (CryoGEN protocol) pass densely spaced angles
(e.g. 1° or finer) so the measured region fills the tilt range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryo_pipeline.ops.fourier import fftfreq_grid_3d, shell_index_3d
from cryo_pipeline.ops.fourier_shells import _NO_POWER, ShellSums, half_spectrum, shell_fsc, shell_sums


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"volumes must be 3D of equal shape, got {a.shape} and {b.shape}")
    return a, b


def _pair_sums(a: np.ndarray, b: np.ndarray, angles_deg: Sequence[float] | None) -> ShellSums:
    measured = None if angles_deg is None else _measured_plane(a.shape, angles_deg)
    fa = half_spectrum(a)
    fb = half_spectrum(b)
    return shell_sums(fa, fb, a.shape, measured)


def fourier_shell_correlation(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FSC between two volumes in shells of one Fourier voxel, DC to Nyquist.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(d, h, w)`` real volumes of equal shape.

    Returns
    -------
    shells : numpy.ndarray
        ``(min(d, h, w)//2 + 1,)`` int shell indices 0 … Nyquist.
    fsc : numpy.ndarray
        Same length, float64 in [−1, 1].
    """
    a, b = _check_pair(a, b)
    sums = _pair_sums(a, b, None)
    return np.arange(sums.n_shells), shell_fsc(sums)


def region_shell_fsc(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> np.ndarray:
    """FSC per shell (DC … Nyquist) restricted to the Fourier voxels where ``region`` is True.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(d, h, w)`` real volumes of equal shape.
    region : numpy.ndarray
        ``(d, h, w)`` bool, unshifted (DC at index 0), e.g. :func:`measured_region_mask_3d`.

    Returns
    -------
    numpy.ndarray
        ``(min(d, h, w)//2 + 1,)``; NaN where a shell has no voxel in the region, 0 where
        either volume has no power there.
    """
    a, b = _check_pair(a, b)
    region = np.asarray(region, dtype=bool)
    if region.shape != a.shape:
        raise ValueError(f"region shape {region.shape} does not match the volumes' {a.shape}")
    n = min(a.shape) // 2 + 1
    shells = np.minimum(shell_index_3d(a.shape), n)  # beyond Nyquist: one discarded bin
    fa = np.fft.fftn(np.asarray(a, dtype=np.float64))
    fb = np.fft.fftn(np.asarray(b, dtype=np.float64))
    power_a, power_b = np.abs(fa) ** 2, np.abs(fb) ** 2
    cross = fa.real * fb.real + fa.imag * fb.imag
    inside = shells[region]
    count = np.bincount(inside, minlength=n + 1)[:n]
    sums = [np.bincount(inside, weights=v[region], minlength=n + 1)[:n] for v in (cross, power_a, power_b)]
    ok = (sums[1] > _NO_POWER * count * power_a.mean()) & (sums[2] > _NO_POWER * count * power_b.mean())
    fsc = np.where(ok, sums[0] / np.sqrt(np.where(ok, sums[1] * sums[2], 1.0)), 0.0)
    return np.where(count > 0, fsc, np.nan)


def shell_frequency_per_angstrom(n_shells: int, *, box_px: int, voxel_size_angstrom: float) -> np.ndarray:
    """Spatial frequency of shells 0 … n_shells−1: k / (box_px · voxel_size) in 1/Å.

    ``box_px`` is the grid the shells are measured on, ``min(shape)``.
    """
    _check_voxel(voxel_size_angstrom)
    if box_px <= 0:
        raise ValueError(f"box_px ({box_px}) must be > 0")
    return np.arange(int(n_shells)) / (float(box_px) * voxel_size_angstrom)


def _check_voxel(voxel_size_angstrom: float) -> None:
    if not (np.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise ValueError(f"voxel_size_angstrom ({voxel_size_angstrom}) must be a positive number")


def fsc_resolution_angstrom(
    fsc: np.ndarray, *, box_px: int, voxel_size_angstrom: float, threshold: float = 0.143
) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold``.

    The curve is scanned from shell 1 (DC is ignored); the crossing between the last
    shell at or above the threshold and the first below it is linearly interpolated
    and converted with :func:`shell_frequency_per_angstrom`. NaN shells count as
    below the threshold.

    Special cases: the curve never falls below the threshold → Nyquist,
    ``2 · voxel_size_angstrom``; shell 1 is already below it → ``box_px · voxel``
    (the coarsest non-DC shell).

    Parameters
    ----------
    fsc : numpy.ndarray
        ``(n_shells,)`` FSC from shell 0 (DC) upward.
    """
    _check_voxel(voxel_size_angstrom)
    fsc = np.asarray(fsc, dtype=np.float64)
    if fsc.ndim != 1 or fsc.size < 2:
        raise ValueError(f"fsc must be a 1D curve with at least 2 shells, got shape {fsc.shape}")
    below = ~(fsc[1:] >= threshold)
    if not below.any():
        return 2.0 * voxel_size_angstrom
    k = int(np.argmax(below)) + 1
    if k == 1:
        return float(box_px * voxel_size_angstrom)
    hi_val, lo_val = fsc[k - 1], fsc[k]
    frac = 1.0 if not np.isfinite(lo_val) else (hi_val - threshold) / (hi_val - lo_val)
    shell = (k - 1) + frac
    return float(box_px * voxel_size_angstrom / shell)


def measured_region_mask_3d(shape_zyx: tuple[int, int, int], angles_deg: Sequence[float]) -> np.ndarray:
    """Fourier voxels within half a voxel of an acquired projection's plane.

    Parameters
    ----------
    shape_zyx : tuple of int
        Volume shape ``(d, h, w)``.
    angles_deg : sequence of float
        Tilt angles of the acquired projections.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` bool, unshifted (DC at index 0), constant along k_y;
        True = measured, False = missing. Voxel k is measured when
        |k_z cos θ + k_x sin θ| ≤ 0.5 for some θ, with k_z = fftfreq·d, k_x = fftfreq·w.
    """
    d, h, w = (int(n) for n in shape_zyx)
    plane = _measured_plane((d, h, w), angles_deg)
    return np.broadcast_to(plane[:, None, :], (d, h, w)).copy()


def _measured_plane(shape_zyx: tuple[int, int, int], angles_deg: Sequence[float]) -> np.ndarray:
    """The measured region's `(d, w)` (k_z, k_x) plane (it is constant along k_y)."""
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(f"angles_deg must be a non-empty list of finite angles, got {angles_deg!r}")
    d, h, w = (int(n) for n in shape_zyx)
    kz, _, kx = fftfreq_grid_3d((d, h, w))
    kz, kx = kz[:, 0, :] * d, kx[:, 0, :] * w  # (d, 1), (1, w) in index units
    plane = np.zeros((d, w), dtype=bool)
    for theta in np.radians(angles):
        plane |= np.abs(kz * np.cos(theta) + kx * np.sin(theta)) <= 0.5
    return plane


def directional_fsc(
    a: np.ndarray, b: np.ndarray, *, angles_deg: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FSC per shell restricted to the measured and to the missing region.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(d, h, w)`` real volumes of equal shape (estimate, ground truth).
    angles_deg : sequence of float
        Tilt angles defining the measured region (:func:`measured_region_mask_3d`).

    Returns
    -------
    shells, fsc_measured, fsc_missing : numpy.ndarray
        Each ``(min(d, h, w)//2 + 1,)``; NaN where a shell has no voxel in the region.
    """
    a, b = _check_pair(a, b)
    return _directional_from_sums(_pair_sums(a, b, angles_deg))


def _directional_from_sums(sums: ShellSums):
    curves = []
    for region in ("measured", "missing"):
        count = sums.region(region)["count"][: sums.n_shells]
        curves.append(np.where(count > 0, shell_fsc(sums, region), np.nan))
    return np.arange(sums.n_shells), curves[0], curves[1]


def _mean_over_shells(curve: np.ndarray) -> float:
    """Mean of shells 1 … end, ignoring NaN; NaN when none is finite."""
    values = np.asarray(curve, dtype=np.float64)[1:]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def dfsc_missing_mean(fsc_missing: np.ndarray) -> float:
    """Mean missing-region FSC over shells 1 … Nyquist (NaN shells ignored).

    Parameters
    ----------
    fsc_missing : numpy.ndarray
        ``(n_shells,)`` curve from :func:`directional_fsc`, shell 0 = DC.
    """
    return _mean_over_shells(fsc_missing)


def wedge_fill_ratio(volume: np.ndarray, *, angles_deg: Sequence[float]) -> float:
    """No-reference wedge fill: missing-region power / power expected there.

    Over shells 1 … Nyquist::

        Σ_k P_missing(k) / Σ_k n_missing(k) · (P_measured(k) / n_measured(k))

    with P the summed |F|² of the region in shell k. ≈ 1 for an isotropic volume,
    ≈ 0 when the wedge was zeroed. Shells without measured voxels are skipped; NaN
    when there is nothing to compare (no missing voxels or no measured power).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` real volume.
    angles_deg : sequence of float
        Tilt angles defining the measured region.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {volume.shape}")
    sums = shell_sums(half_spectrum(volume), None, volume.shape, _measured_plane(volume.shape, angles_deg))
    return _wedge_fill_from_sums(sums)


def _wedge_fill_from_sums(sums: ShellSums) -> float:
    n = sums.n_shells
    p_meas, p_miss = sums.region("measured")["pa"][1:n], sums.region("missing")["pa"][1:n]
    n_meas, n_miss = sums.region("measured")["count"][1:n], sums.region("missing")["count"][1:n]
    use = n_meas > 0
    expected = float(np.sum(n_miss[use] * p_meas[use] / n_meas[use]))
    return float(np.sum(p_miss[use]) / expected) if expected > 0 else float("nan")


def fsc_metrics(
    estimate: np.ndarray, ground_truth: np.ndarray, *, angles_deg: Sequence[float], voxel_size_angstrom: float
) -> dict:
    """All FSC-family scores of one estimate against its ground truth.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` real volumes of equal shape.
    angles_deg : sequence of float
        Tilt angles defining the measured region.
    voxel_size_angstrom : float
        Voxel size of both volumes.

    Returns
    -------
    dict
        ``fsc_resolution_angstrom`` (0.143), ``fsc_resolution_05_angstrom`` (0.5),
        ``dfsc_measured_mean``, ``dfsc_missing_mean`` (shells 1 … Nyquist), the estimate's
        ``wedge_fill`` (:func:`wedge_fill_ratio`, from the same transform), and the
        curves as lists for plotting: ``fsc_curve``, ``fsc_measured_curve``,
        ``fsc_missing_curve``, ``frequency_per_angstrom`` (one entry per shell).
    """
    _check_voxel(voxel_size_angstrom)
    a, b = _check_pair(estimate, ground_truth)
    box = min(a.shape)
    sums = _pair_sums(a, b, angles_deg)
    n = sums.n_shells
    fsc = shell_fsc(sums)
    _, measured_curve, missing_curve = _directional_from_sums(sums)
    res = {t: fsc_resolution_angstrom(fsc, box_px=box, voxel_size_angstrom=voxel_size_angstrom, threshold=t)
           for t in (0.143, 0.5)}
    return {
        "fsc_resolution_angstrom": res[0.143],
        "fsc_resolution_05_angstrom": res[0.5],
        "dfsc_measured_mean": _mean_over_shells(measured_curve),
        "dfsc_missing_mean": _mean_over_shells(missing_curve),
        "wedge_fill": _wedge_fill_from_sums(sums),
        "fsc_curve": fsc.tolist(),
        "fsc_measured_curve": measured_curve.tolist(),
        "fsc_missing_curve": missing_curve.tolist(),
        "frequency_per_angstrom": shell_frequency_per_angstrom(
            n, box_px=box, voxel_size_angstrom=voxel_size_angstrom
        ).tolist(),
    }
