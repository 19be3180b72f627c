"""Validation scores that need no ground truth: FSC restricted to a Fourier region.

Three regions of the (k_z, k_x) plane (all constant along k_y, shells as in
:mod:`cryo_pipeline.ops.fsc`):

* the **held-out band**: Fourier voxels within half a voxel of a held-out tilt's plane
  and not within half a voxel of any working tilt's plane
  (:func:`heldout_band_mask_3d`). Real measurements exist there (the reference was
  reconstructed from them) that no method saw: :func:`band_fsc` between a method's
  output and the full-range reference says how well the method filled it;
* the **measured region** of the working tilts (:func:`cryo_pipeline.ops.fsc.measured_region_mask_3d`):
  :func:`measured_region_fsc_mean` between a method's output and its input says how
  much the correction altered what was measured (fidelity; 1 = untouched);
* the **missing wedge** (directions outside the tilt range,
  :func:`cryo_pipeline.ops.wedge.missing_wedge_mask_3d`): :func:`halfmap_scores`
  between the corrected even and odd halves says whether the halves agree there
  (a method that invents structure in the wedge gives halves that disagree).

Means run over shells 1 … ``max_shell`` (inclusive), skipping shells without voxels in
the region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryo_pipeline.ops.fsc import (
    fourier_shell_correlation,
    fsc_resolution_angstrom,
    measured_region_mask_3d,
    region_shell_fsc,
)
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d


def heldout_band_mask_3d(
    shape_zyx: tuple[int, int, int], *, working_angles_deg: Sequence[float], heldout_angles_deg: Sequence[float]
) -> np.ndarray:
    """Fourier voxels measured by a held-out tilt and by no working tilt.

    Parameters
    ----------
    shape_zyx : tuple of int
        Volume shape ``(d, h, w)``.
    working_angles_deg, heldout_angles_deg : sequence of float
        The tilts every method saw, and those kept back (reference minus working).

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` bool, unshifted, constant along k_y.
    """
    heldout = measured_region_mask_3d(shape_zyx, heldout_angles_deg)
    return heldout & ~measured_region_mask_3d(shape_zyx, working_angles_deg)


def mean_over_shells(curve: np.ndarray, *, max_shell: float | None = None) -> float:
    """Mean of ``curve`` over shells 1 … ``floor(max_shell)`` (all when None), NaN shells skipped.

    Returns NaN when no shell in that range is finite.
    """
    values = np.asarray(curve, dtype=np.float64)
    stop = values.size if max_shell is None else min(values.size, int(np.floor(max_shell)) + 1)
    values = values[1:stop]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def crossing_shell(fsc: np.ndarray, *, threshold: float = 0.143) -> float:
    """Shell (fractional, interpolated) where ``fsc`` first falls below ``threshold``.

    Same rules as :func:`cryo_pipeline.ops.fsc.fsc_resolution_angstrom`: never below →
    the last shell (Nyquist); below from shell 1 on → 1.
    """
    fsc = np.asarray(fsc, dtype=np.float64)
    resolution = fsc_resolution_angstrom(fsc, box_px=1, voxel_size_angstrom=1.0, threshold=threshold)
    if resolution == 2.0:  # the never-below special case: Nyquist of the curve
        return float(fsc.size - 1)
    return float(1.0 / resolution)


def band_fsc(
    estimate: np.ndarray,
    reference: np.ndarray,
    *,
    working_angles_deg: Sequence[float],
    heldout_angles_deg: Sequence[float],
) -> np.ndarray:
    """FSC per shell between ``estimate`` and ``reference`` inside the held-out band.

    Parameters
    ----------
    estimate, reference : numpy.ndarray
        ``(d, h, w)`` a method's output and the full-range reference, same grid.

    Returns
    -------
    numpy.ndarray
        ``(min(d, h, w)//2 + 1,)``; NaN for shells with no band voxel.
    """
    band = heldout_band_mask_3d(
        np.shape(estimate), working_angles_deg=working_angles_deg, heldout_angles_deg=heldout_angles_deg
    )
    if not band.any():
        raise ValueError(
            "the held-out band is empty: every held-out tilt's plane lies within half a voxel of a working "
            "tilt's (widen the reference range or use a larger box)"
        )
    return region_shell_fsc(estimate, reference, band)


def measured_region_fsc_mean(output: np.ndarray, method_input: np.ndarray, *, angles_deg: Sequence[float]) -> float:
    """Fidelity: mean FSC between a method's output and its input in the measured region.

    Shells 1 … Nyquist of :func:`cryo_pipeline.ops.fsc.region_shell_fsc` inside the
    measured region of ``angles_deg``. 1 when the measured data were kept; a method that
    denoises also lowers the high, noise-dominated shells.
    """
    measured = measured_region_mask_3d(np.shape(output), angles_deg)
    return mean_over_shells(region_shell_fsc(output, method_input, measured))


def halfmap_scores(
    even: np.ndarray,
    odd: np.ndarray,
    *,
    tilt_min_deg: float,
    tilt_max_deg: float,
    voxel_size_angstrom: float,
    threshold: float = 0.143,
) -> dict:
    """Half-map FSC between two independently corrected halves: overall and per region.

    Parameters
    ----------
    even, odd : numpy.ndarray
        ``(d, h, w)`` the method's output on each half, same grid.
    tilt_min_deg, tilt_max_deg : float
        The working tilt range; the missing region is the wedge outside it.
    voxel_size_angstrom : float
        Voxel size of both halves.

    Returns
    -------
    dict
        ``halfmap_fsc_resolution_angstrom`` (``threshold`` crossing of the whole-shell FSC),
        ``halfmap_dfsc_missing_mean`` and ``halfmap_dfsc_measured_mean`` (shells 1 …
        Nyquist inside and outside the wedge), and the curves ``halfmap_fsc_curve``,
        ``halfmap_fsc_measured_curve``, ``halfmap_fsc_missing_curve`` as lists.
    """
    _, fsc = fourier_shell_correlation(even, odd)
    measured = missing_wedge_mask_3d(
        np.shape(even), tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg
    ) > 0.5
    measured_curve = region_shell_fsc(even, odd, measured)
    missing_curve = region_shell_fsc(even, odd, ~measured)
    return {
        "halfmap_fsc_resolution_angstrom": fsc_resolution_angstrom(
            fsc, box_px=min(np.shape(even)), voxel_size_angstrom=voxel_size_angstrom, threshold=threshold
        ),
        "halfmap_dfsc_missing_mean": mean_over_shells(missing_curve),
        "halfmap_dfsc_measured_mean": mean_over_shells(measured_curve),
        "halfmap_fsc_curve": fsc.tolist(),
        "halfmap_fsc_measured_curve": measured_curve.tolist(),
        "halfmap_fsc_missing_curve": missing_curve.tolist(),
    }
