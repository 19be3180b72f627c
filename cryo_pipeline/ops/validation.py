"""All no-ground-truth validation scores of one method's output, from arrays (issue 12).

Composes :mod:`~cryo_pipeline.ops.region_scores`, :mod:`~cryo_pipeline.ops.reprojection`
and :mod:`~cryo_pipeline.ops.isotropy` into the ``metrics.tsv`` columns
(:data:`VALIDATION_COLUMNS`), the curves for the report and the per-held-out-tilt rows.
Each part runs only when its inputs are given; the columns of a part that did not run
are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryo_pipeline.ops.isotropy import isotropy_z_x
from cryo_pipeline.ops.region_scores import band_fsc, halfmap_scores, mean_over_shells, measured_region_fsc_mean
from cryo_pipeline.ops.reprojection import reprojection_agreement

VALIDATION_COLUMNS = (
    "band_fsc_mean",
    "heldout_ncc_mean",
    "heldout_frc_resolution_angstrom",
    "halfmap_fsc_resolution_angstrom",
    "halfmap_dfsc_missing_mean",
    "halfmap_dfsc_measured_mean",
    "measured_region_fsc_mean",
    "isotropy_z_x",
)
HELDOUT_TILT_COLUMNS = ("angle_deg", "ncc", "frc_resolution_angstrom")


@dataclass(frozen=True)
class HeldOut:
    """The full-range reference and the held-out images it adds to the working range.

    ``reference``: ``(d, h, w)`` on the method's grid; ``resolution_shell``: its even/odd
    0.143 shell; ``images``: ``(n_heldout, h, n_det)`` measured images; ``angles_deg``:
    their tilts.
    """

    reference: np.ndarray
    resolution_shell: float
    images: np.ndarray
    angles_deg: np.ndarray


@dataclass(frozen=True)
class Halves:
    """A method's outputs on the even and the odd half, and the working tilt range."""

    even: np.ndarray
    odd: np.ndarray
    tilt_min_deg: float
    tilt_max_deg: float


def validation_scores(
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float,
    working_angles_deg: Sequence[float],
    heldout: HeldOut | None = None,
    halves: Halves | None = None,
    method_input: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, list[float]], list[dict[str, float]]]:
    """Columns, curves and held-out-tilt rows for one ``(d, h, w)`` output.

    Returns
    -------
    columns : dict
        Every name of :data:`VALIDATION_COLUMNS` (NaN where its part did not run).
    curves : dict
        ``band_fsc_curve``, ``halfmap_fsc_curve``, ``halfmap_fsc_measured_curve``,
        ``halfmap_fsc_missing_curve``, ``reference_resolution_shell`` where computed.
    heldout_rows : list of dict
        One per held-out tilt with :data:`HELDOUT_TILT_COLUMNS`.
    """
    columns: dict[str, float] = {name: math.nan for name in VALIDATION_COLUMNS}
    curves: dict = {}
    rows: list[dict[str, float]] = []
    columns["isotropy_z_x"] = isotropy_z_x(volume)
    if method_input is not None:
        columns["measured_region_fsc_mean"] = measured_region_fsc_mean(
            volume, method_input, angles_deg=working_angles_deg
        )
    if heldout is not None:
        curve = band_fsc(volume, heldout.reference, working_angles_deg=working_angles_deg,
                         heldout_angles_deg=heldout.angles_deg)
        columns["band_fsc_mean"] = mean_over_shells(curve, max_shell=heldout.resolution_shell)
        curves["band_fsc_curve"] = curve.tolist()
        curves["reference_resolution_shell"] = float(heldout.resolution_shell)
        agreement = reprojection_agreement(volume, heldout.images, heldout.angles_deg,
                                           pixel_size_angstrom=voxel_size_angstrom)
        columns["heldout_ncc_mean"] = float(np.mean(agreement["ncc"]))
        columns["heldout_frc_resolution_angstrom"] = float(np.mean(agreement["frc_resolution_angstrom"]))
        rows = [
            {"angle_deg": float(a), "ncc": float(n), "frc_resolution_angstrom": float(r)}
            for a, n, r in zip(agreement["angle_deg"], agreement["ncc"], agreement["frc_resolution_angstrom"],
                               strict=True)
        ]
    if halves is not None:
        scores = halfmap_scores(halves.even, halves.odd, tilt_min_deg=halves.tilt_min_deg,
                                tilt_max_deg=halves.tilt_max_deg, voxel_size_angstrom=voxel_size_angstrom)
        for key, value in scores.items():
            (curves if isinstance(value, list) else columns)[key] = value
    return columns, curves, rows
