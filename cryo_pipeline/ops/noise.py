"""Additive noise for simulated data."""

from __future__ import annotations

import numpy as np


def add_gaussian_noise(signal: np.ndarray, *, snr: float | None, seed: int) -> np.ndarray:
    """Add white Gaussian noise at a given signal-to-noise ratio.

    SNR is the variance ratio ``var(signal) / var(noise)`` over the whole array (not
    in dB), so the noise is zero-mean with standard deviation ``sqrt(var(signal) / snr)``.

    Parameters
    ----------
    signal : numpy.ndarray
        Real array of any shape, e.g. a ``(d, h, w)`` volume or an ``(n_tilts, h, w)``
        tilt series.
    snr : float or None
        Variance SNR > 0; ``None`` or ``inf`` returns a noise-free copy.
    seed : int
        Seed of the noise (``numpy.random.default_rng``).

    Returns
    -------
    numpy.ndarray
        Same shape as ``signal``, float32.
    """
    signal = np.asarray(signal)
    if snr is None or snr == np.inf:
        return signal.astype(np.float32, copy=True)
    if not np.isfinite(snr) or snr <= 0:
        raise ValueError(f"snr ({snr}) must be > 0 (variance ratio), or None/inf for no noise")
    variance = float(np.var(signal, dtype=np.float64))
    if variance <= 0:
        raise ValueError(
            f"signal is constant (variance {variance}), so snr={snr} defines no noise level; "
            "pass snr=None for no noise"
        )
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(signal.shape) * np.sqrt(variance / snr)
    return (signal.astype(np.float64) + noise).astype(np.float32)
