"""Stage ``make_mask``: IsoNet-style density mask of a tomogram (peers.md §1b).

Writes a byte mask (MRC mode 0, values 0/1, the tomogram's voxel size) and a ``.json``
record with ``mask_fraction`` and the resolved ``density_contrast``. An empty mask is
written with a warning in the log: it becomes an error only at extraction, where the
fix (lower the percentages, check the contrast) is named.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import MaskConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.ops.masks import density_mask_3d, mask_fraction, resolve_density_contrast

log = logging.getLogger(__name__)


@reads("make_mask")
def run(
    *,
    tomogram_path: Path,
    dataset: DatasetRow,
    cfg: MaskConfig,
    out: Path,
    user_mask_path: Path | None = None,
) -> float:
    """Compute the density mask of ``tomogram_path`` and write it to ``out`` (+ ``.json``).

    Parameters
    ----------
    tomogram_path : Path
        `(d, h, w)` tomogram (MRC); the sheet's voxel size overrides the header's.
    dataset : DatasetRow
        The dataset row (name and voxel size).
    cfg : MaskConfig
        Patch size, percentages, ``z_crop`` and ``density_contrast``.
    out : Path
        Output mask MRC `(d, h, w)`, values 0/1.
    user_mask_path : Path, optional
        A user mask (MRC, same shape; non-zero = keep) intersected with the density mask.

    Returns
    -------
    float
        Fraction of voxels inside the written mask.

    Raises
    ------
    ValueError
        The user mask's shape differs from the tomogram's.
    """
    tomo = read_mrc(Path(tomogram_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    start = time.perf_counter()
    contrast = cfg.density_contrast
    if contrast == "auto":
        contrast = resolve_density_contrast(tomo.data)
    mask = density_mask_3d(
        tomo.data,
        patch_size_px=cfg.patch_size_px,
        density_percentage=cfg.density_percentage,
        std_percentage=cfg.std_percentage,
        z_crop=cfg.z_crop,
        density_contrast=contrast,
    )
    shape, voxel = tomo.data.shape, tomo.voxel_size_angstrom
    del tomo  # only the mask is needed from here on
    if user_mask_path is not None:
        user = read_mrc(Path(user_mask_path), allow_missing_voxel_size=True).data
        if user.shape != shape:
            raise ValueError(f"user mask {user_mask_path} of {dataset.dataset} is {user.shape} voxels but the "
                             f"tomogram {tomogram_path} is {shape}; give a mask on the tomogram's grid")
        mask &= (user != 0).astype(np.uint8)
        del user
    fraction = mask_fraction(mask)
    runtime = time.perf_counter() - start
    log.info("mask of %s: %.1f %% of voxels (density %g %%, std %g %%, z_crop %s)", dataset.dataset, 100 * fraction,
             cfg.density_percentage, cfg.std_percentage, cfg.z_crop)
    log.info("mask of %s: density contrast %s (%s)%s", dataset.dataset, contrast, cfg.density_contrast,
             ", intersected with the user mask" if user_mask_path is not None else "")
    if fraction == 0.0:
        log.warning("mask of %s is empty; extraction will fail: lower mask.density_percentage/std_percentage "
                    "or check the tomogram's contrast (mask.density_contrast)", dataset.dataset)
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        write_mrc(tmp_out, mask.astype(np.int8), voxel_size_angstrom=voxel,
                  labels=[f"cryo_pipeline mask {contrast} d{cfg.density_percentage:g} s{cfg.std_percentage:g}"])
        write_stage_meta(
            tmp_meta,
            stage="make_mask",
            config=cfg,
            dataset=dataset,
            runtime_s=runtime,
            extra={"mask_fraction": fraction, "density_contrast": contrast,
                   "user_mask": str(user_mask_path) if user_mask_path is not None else None},
        )
    return fraction

