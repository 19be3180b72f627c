"""The full-range reference: a reconstruction from every tilt in the reference range.

The working range is what every method sees; the reference range (a superset, e.g.
±76° around a ±60° working range) adds held-out tilts that no method saw. The
reference is reconstructed from all of them by WBP or non-negative SIRT
(:mod:`cryo_pipeline.ops.sirt`), and so are its even and odd halves (alternating in
angle, :func:`cryo_pipeline.ops.tilts.alternate_halves`): their FSC says up
to which shell the reference can be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryo_pipeline.ops.fsc import fourier_shell_correlation
from cryo_pipeline.ops.region_scores import apodize_zx, crossing_shell
from cryo_pipeline.ops.sirt import sirt_3d
from cryo_pipeline.ops.tilts import alternate_halves, heldout_tilts, tilts_in_range
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

@dataclass(frozen=True)
class Reference:
    """A full-range reference and what it was made from.

    Attributes
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` float32 reconstruction from every tilt in the reference range.
    reference_indices, heldout_indices : numpy.ndarray
        Tilt indices (file order) used, and those of them outside the working range.
    halves_fsc : numpy.ndarray
        ``(min(d, h, w)//2 + 1,)`` apodised FSC between the even- and odd-tilt reconstructions.
    resolution_shell : float
        Where ``halves_fsc`` first falls below 0.143 (the band-FSC cutoff).
    """

    volume: np.ndarray
    reference_indices: np.ndarray
    heldout_indices: np.ndarray
    halves_fsc: np.ndarray
    resolution_shell: float


def reconstruct(series: np.ndarray, angles_deg, *, volume_shape_zyx, sirt_iterations: int | None,
                wbp_filter: str = "ramp") -> np.ndarray:
    """WBP (``sirt_iterations`` None) or non-negative SIRT of ``series`` (``(n, h, n_det)``) at ``angles_deg``."""
    if sirt_iterations is None:
        return weighted_backprojection_3d(series, angles_deg, volume_shape_zyx=volume_shape_zyx, window=wbp_filter)
    if sirt_iterations < 1:
        raise ValueError(f"sirt_iterations must be >= 1 (or None for WBP), got {sirt_iterations}")
    return sirt_3d(series, angles_deg, volume_shape_zyx=volume_shape_zyx, iterations=sirt_iterations)


def full_range_reference(
    series: np.ndarray,
    angles_deg,
    *,
    working_range_deg: tuple[float, float],
    reference_range_deg: tuple[float, float],
    volume_shape_zyx: tuple[int, int, int],
    sirt_iterations: int | None = None,
    wbp_filter: str = "ramp",
) -> Reference:
    """Reconstruct the reference from the tilts in ``reference_range_deg``.

    Parameters
    ----------
    series : numpy.ndarray
        ``(n_tilts, h, n_det)`` the whole tilt series (working and held-out tilts).
    angles_deg : sequence of float
        ``(n_tilts,)`` its angles, file order.
    working_range_deg, reference_range_deg : tuple of float
        ``(min, max)``; the reference range must contain the working range.
    volume_shape_zyx : tuple of int
        Grid of the reference (the methods' grid).
    sirt_iterations : int or None
        None: WBP (``wbp_filter``); an int: non-negative SIRT with that many updates.

    Raises
    ------
    ValueError
        The ranges do not nest, no tilt is held out, or a half has fewer than 2 tilts.
    """
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    heldout = heldout_tilts(angles, working_range_deg=working_range_deg, reference_range_deg=reference_range_deg)
    used = tilts_in_range(angles, tilt_min_deg=reference_range_deg[0], tilt_max_deg=reference_range_deg[1])
    if heldout.size == 0:
        raise ValueError(
            f"no tilt of {angles.min():g}..{angles.max():g} deg lies in the reference range "
            f"[{reference_range_deg[0]:g}, {reference_range_deg[1]:g}] outside the working range "
            f"[{working_range_deg[0]:g}, {working_range_deg[1]:g}]: nothing is held out"
        )
    series = np.asarray(series)

    def make(indices):
        return reconstruct(series[indices], angles[indices], volume_shape_zyx=volume_shape_zyx,
                           sirt_iterations=sirt_iterations, wbp_filter=wbp_filter)

    even, odd = alternate_halves(angles[used])
    _, halves_fsc = fourier_shell_correlation(apodize_zx(make(used[even])), apodize_zx(make(used[odd])))
    return Reference(
        volume=np.asarray(make(used), dtype=np.float32),
        reference_indices=used,
        heldout_indices=heldout,
        halves_fsc=halves_fsc,
        resolution_shell=crossing_shell(halves_fsc),
    )
