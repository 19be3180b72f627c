"""Weighted (filtered) back-projection.

f(x) = Σ_i Δθ_i · (p_i ∗ h)(u_i(x)), with h the discrete ramp filter of Kak & Slaney
(h[0] = 1/4, h[n odd] = −1/(π n)², 0 otherwise; unit detector spacing), optionally
apodised, and Δθ_i the angular interval (radians) each tilt stands for. With the
footprint back-projector of :mod:`cryo_pipeline.ops.projector` this reconstructs
a volume in the same intensity units as the one that was projected.
"""

from __future__ import annotations

import numpy as np
import torch

from cryo_pipeline.ops.projector import ParallelBeamProjector

FILTERS = ("ramp", "shepp-logan", "cosine", "hann", "hamming")


def angular_weights_rad(angles_deg) -> np.ndarray:
    """Angular interval (radians) each tilt represents: half the gaps to its neighbours.

    The first and last tilt get their inner half-gap twice. When the intervals add up to
    more than 180° (a full-range series that repeats ±90°), all are scaled to sum to π.

    Returns
    -------
    numpy.ndarray
        ``(n_tilts,)`` in the input order.
    """
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 1:
        return np.array([np.pi])
    order = np.argsort(angles)
    sorted_angles = angles[order]
    gaps = np.diff(sorted_angles)
    if np.any(gaps <= 0):
        raise ValueError(f"tilt angles contain duplicates: {sorted_angles[np.r_[gaps <= 0, False]].tolist()}")
    left = np.r_[gaps[0], gaps]
    right = np.r_[gaps, gaps[-1]]
    weights = np.radians(0.5 * (left + right))
    if weights.sum() > np.pi:
        weights *= np.pi / weights.sum()
    out = np.empty_like(weights)
    out[order] = weights
    return out


def ramp_filter_1d(n_pad: int, *, window: str = "ramp") -> np.ndarray:
    """Frequency response of the apodised discrete ramp filter.

    Parameters
    ----------
    n_pad : int
        FFT length (even, ≥ twice the detector width to avoid wrap-around).
    window : str
        One of :data:`FILTERS`.

    Returns
    -------
    numpy.ndarray
        ``(n_pad // 2 + 1,)`` real rfft response.
    """
    if window not in FILTERS:
        raise ValueError(f"unknown WBP filter {window!r}; choose one of {', '.join(FILTERS)}")
    n = np.arange(n_pad)
    n = np.where(n > n_pad // 2, n - n_pad, n)
    kernel = np.zeros(n_pad)
    kernel[0] = 0.25
    odd = n % 2 == 1
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    response = np.real(np.fft.rfft(kernel))
    freq = np.fft.rfftfreq(n_pad)  # 0 .. 0.5 cycles/px
    if window == "shepp-logan":
        response *= np.sinc(freq)
    elif window == "cosine":
        response *= np.cos(np.pi * freq)
    elif window == "hann":
        response *= 0.5 * (1 + np.cos(2 * np.pi * freq))
    elif window == "hamming":
        response *= 0.54 + 0.46 * np.cos(2 * np.pi * freq)
    return response


def filter_tilt_series(tilt_series: torch.Tensor, *, window: str = "ramp") -> torch.Tensor:
    """Ramp-filter each tilt image along the detector (x') axis.

    Parameters
    ----------
    tilt_series : torch.Tensor
        ``(n_tilts, h, n_det)``.

    Returns
    -------
    torch.Tensor
        ``(n_tilts, h, n_det)``, same dtype.
    """
    n_det = tilt_series.shape[-1]
    n_pad = max(64, int(2 ** np.ceil(np.log2(2 * n_det))))
    response = torch.as_tensor(ramp_filter_1d(n_pad, window=window), dtype=tilt_series.dtype, device=tilt_series.device)
    spectrum = torch.fft.rfft(tilt_series, n=n_pad, dim=-1)
    return torch.fft.irfft(spectrum * response, n=n_pad, dim=-1)[..., :n_det]


def checked_tilt_series(tilt_series, angles_deg, *, volume_shape_zyx: tuple[int, int, int]):
    """A reconstruction's inputs as ``(float32 tensor, float64 angles, was_numpy)``, checked.

    Raises ``ValueError`` when the angles do not match the images or the series' height
    does not match the volume's.
    """
    was_numpy = not isinstance(tilt_series, torch.Tensor)
    series = torch.from_numpy(np.ascontiguousarray(tilt_series, dtype=np.float32)) if was_numpy else tilt_series
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size != series.shape[0]:
        raise ValueError(f"tilt angles ({angles.size}) do not match tilt images ({series.shape[0]})")
    if series.shape[1] != volume_shape_zyx[1]:
        raise ValueError(f"tilt series height {series.shape[1]} != volume height {volume_shape_zyx[1]}")
    return series, angles, was_numpy


def weighted_backprojection_3d(
    tilt_series,
    angles_deg,
    *,
    volume_shape_zyx: tuple[int, int, int],
    window: str = "ramp",
):
    """Reconstruct a volume by weighted (filtered) back-projection.

    Parameters
    ----------
    tilt_series : numpy.ndarray or torch.Tensor
        ``(n_tilts, h, n_det)`` aligned tilt series; tilt axis = y.
    angles_deg : sequence of float
        One angle per tilt image.
    volume_shape_zyx : tuple of int
        ``(d, h, w)`` of the output.
    window : str
        Apodisation of the ramp filter (:data:`FILTERS`).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(d, h, w)`` float32, the same kind as the input.
    """
    series, angles, was_numpy = checked_tilt_series(tilt_series, angles_deg, volume_shape_zyx=volume_shape_zyx)
    weights = torch.as_tensor(angular_weights_rad(angles), dtype=series.dtype, device=series.device)
    filtered = filter_tilt_series(series, window=window) * weights[:, None, None]
    projector = ParallelBeamProjector(
        volume_shape_zyx, angles, detector_width_px=series.shape[2], device=series.device
    )
    volume = projector.adjoint(filtered)
    return volume.numpy() if was_numpy else volume
