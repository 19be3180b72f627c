"""Stage ``plan_slabs``: read the tilt series header (and its rms) and write the CN slab plan.

The plan (JSON, :mod:`cryo_pipeline.io.slab_plan`) is what the Snakemake checkpoint ``plan_slabs`` hands to the
``fit_slab`` jobs: the volume shape, the tilts inside the sheet's range, the slab
windows (:mod:`cryo_pipeline.ops.slabs`), the amplitude of the network output and the
seed slab. Only the header is parsed; the rms is streamed one tilt image at a time, so
memory stays at one image whatever the series size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import CnConfig
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles
from cryo_pipeline.io.model_files import build_siren
from cryo_pipeline.io.mrc import read_mrc_header, read_mrc_memmap
from cryo_pipeline.io.provenance import provenance_record
from cryo_pipeline.io.slab_plan import SlabPlanRecord, write_slab_plan
from cryo_pipeline.models import count_parameters
from cryo_pipeline.ops.slabs import SlabPlan, plan_slabs, slab_rows_from_ratio
from cryo_pipeline.ops.tilts import select_tilts_in_range

log = logging.getLogger(__name__)

__all__ = ["run"]


def _rms_of_tilts(series: np.ndarray, keep: np.ndarray, path: Path) -> float:
    total, count = 0.0, 0
    for index in keep:
        image = np.asarray(series[int(index)], dtype=np.float64)
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{path}: tilt image {int(index)} has {int(np.sum(~np.isfinite(image)))} NaN/Inf "
                             "pixels; fix or drop it before reconstruction")
        total += float(np.square(image).sum())
        count += image.size
    rms = float(np.sqrt(total / count))
    if rms <= 0:
        raise ValueError(f"{path}: the tilts inside the sheet's range are all zero; nothing to reconstruct")
    return rms


@reads("plan_slabs")
def run(*, tilt_series_path: Path, angles_path: Path, dataset: DatasetRow, cfg: CnConfig, out: Path,
        reference_volume_path: Path | None = None) -> SlabPlan:
    """Write the slab plan of one tilt series to ``out`` (JSON) and return it.

    The volume is ``(d, H, w)``: ``H`` and ``w`` from the tilt series, ``d`` from the
    reference volume (synthetic data), else ``cfg.thickness_px``, else ``w``.
    """
    tilt_series_path, angles_path = Path(tilt_series_path), Path(angles_path)
    header = read_mrc_header(tilt_series_path)
    n_images, height, width = (int(n) for n in header["shape_zyx"])
    angles = read_tilt_angles(angles_path)
    check_angles_match(angles, n_images, angles_path=angles_path, images_path=tilt_series_path)
    keep = select_tilts_in_range(angles, tilt_min_deg=dataset.tilt_min_deg, tilt_max_deg=dataset.tilt_max_deg)
    if reference_volume_path is not None:
        depth = int(read_mrc_header(Path(reference_volume_path))["shape_zyx"][0])
    else:
        depth = cfg.thickness_px or width
    n_parameters = count_parameters(build_siren(cfg))
    slab = cfg.slab_px or slab_rows_from_ratio(n_parameters, depth_px=depth, width_px=width,
                                               ratio=cfg.params_per_voxel, height_px=height)
    try:
        plan = plan_slabs(height, slab_px=slab, halo_px=cfg.halo_px)
    except ValueError as error:
        raise ValueError(f"{tilt_series_path} (height {height} rows): {error}") from None
    series, voxel = read_mrc_memmap(tilt_series_path, voxel_size_angstrom=dataset.voxel_size_angstrom)
    rms = _rms_of_tilts(series, keep, tilt_series_path)
    record = SlabPlanRecord(
        plan=plan,
        volume_shape_zyx=(depth, height, width),
        voxel_size_angstrom=float(voxel),
        tilt_indices=tuple(int(i) for i in keep),
        angles_deg=tuple(float(a) for a in angles[keep]),
        tilt_series_rms=rms,
        value_scale=rms / depth,
        n_parameters=int(n_parameters),
        params_per_voxel=n_parameters / (depth * plan.slab_px * width),
        schedule=cfg.schedule,
        tilt_series=str(tilt_series_path),
        dataset=dataset.model_dump(mode="json"),
        provenance=provenance_record(config=cfg.model_dump(mode="json")),
    )
    write_slab_plan(Path(out), record)
    log.info("%s: %d slabs of %d rows (+%d halo) over %d rows, volume %s, %d/%d tilts, %d parameters per network "
             "(%.3g per voxel)", dataset.dataset, plan.n_slabs, plan.slab_px, plan.halo_px, height,
             (depth, height, width), keep.size, n_images, n_parameters, record.params_per_voxel)
    return plan
