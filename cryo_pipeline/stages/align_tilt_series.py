"""Stage ``align_tilt_series``: a raw stack (+ alignment, + tilt-axis angle) → the aligned, axis-on-y stack.

Every downstream stage (``reconstruct_wbp``, ``plan_slabs``, ``fit_slab``) expects a
tilt series whose images are aligned and whose tilt axis is the image's y axis
(DESIGN.md §1). This stage makes one from what a microscope and an alignment program
give:

* ``tilt_axis_deg`` alone (the sheet column): each image is rotated so the axis,
  at that angle from y (counter-clockwise), comes onto y — exactly (transpose/flips)
  for 0, ±90, ±180°, else by a cubic B-spline into a size that keeps every pixel;
* an ``alignment`` file: IMOD ``.xf`` (+ a ``.xtilt`` of the same stem beside it, which
  must be all zero), AreTomo ``.aln`` (excluded views dropped, angles from its TILT
  column) or a CryoET Data Portal ``alignment_metadata.json``. Each image is resampled
  once, with its shifts and rotation combined. An alignment carries its own rotation,
  so ``tilt_axis_deg`` must then be empty.

Config ``align:`` (:class:`cryo_pipeline.config.stages.AlignConfig`):

* ``subtract_background``: each raw image's border median is subtracted first, so the
  background is 0 (detectors that count with an offset: HAADF-STEM);
* ``bin_factor``: the aligned images are Fourier-binned by that factor in the same pass
  (:func:`cryo_pipeline.ops.aligned_binning.align_and_bin_image`, centred as block
  averaging). The sheet's ``voxel_size_angstrom`` is then the *binned* pixel size (what
  every later stage reads); without it, the raw header's pixel size × ``bin_factor``.

Outputs: the aligned stack (MRC, float32; pixel size as above), the angles of its
images (``.tlt``) and a JSON record of what was applied (source, rotations, shifts,
kept raw images, sizes, background levels) with the provenance.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import AlignConfig
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles, write_tilt_angles
from cryo_pipeline.io.aretomo_aln import alignment_from_aln
from cryo_pipeline.io.imod_alignment import alignment_from_xf
from cryo_pipeline.io.mrc import open_mrc_for_writing, read_mrc_memmap
from cryo_pipeline.io.portal import alignment_from_portal_json
from cryo_pipeline.ops.aligned_binning import align_and_bin_image, binned_shape_yx
from cryo_pipeline.ops.image_alignment import TiltAlignment, border_median, quarter_turns
from cryo_pipeline.io.stage_records import stage_outputs, write_stage_meta

log = logging.getLogger(__name__)

ALIGNMENT_SUFFIXES = (".xf", ".aln", ".json")


def load_alignment(
    alignment_path: Path | None,
    *,
    tilt_axis_deg: float | None,
    n_images: int,
    images_path: Path,
    angles: np.ndarray | None,
    angles_path: Path | None,
) -> TiltAlignment:
    """The alignment to apply: from ``alignment_path`` (by suffix) or from ``tilt_axis_deg`` alone.

    Raises
    ------
    ValueError
        Both or an unknown alignment suffix; anything the format readers reject (their
        message names the file and the line).
    """
    if alignment_path is None:
        return TiltAlignment.tilt_axis_only(tilt_axis_deg or 0.0, n_images)
    if tilt_axis_deg is not None:
        raise ValueError(f"column tilt_axis_deg ({tilt_axis_deg:g}) and column alignment ({alignment_path}) are both "
                         "given; an alignment file carries its own rotation: leave tilt_axis_deg empty")
    suffix = alignment_path.suffix.lower()
    if suffix == ".xf":
        xtilt = alignment_path.with_suffix(".xtilt")
        return alignment_from_xf(alignment_path, n_images=n_images, images_path=images_path,
                                 xtilt_path=xtilt if xtilt.is_file() else None)
    if suffix == ".aln":
        return alignment_from_aln(alignment_path, n_images=n_images, images_path=images_path,
                                  angles_deg=angles, angles_path=angles_path)
    if suffix == ".json":
        return alignment_from_portal_json(alignment_path, n_images=n_images, images_path=images_path)
    raise ValueError(f"column alignment: {alignment_path} is not an IMOD .xf, AreTomo .aln or CryoET Data Portal "
                     "alignment_metadata.json")


def _angles_of_kept_views(alignment: TiltAlignment, angles: np.ndarray | None, *, angles_path, n_images, images_path):
    if alignment.tilt_angles_deg is not None and (angles is None or len(angles) != n_images):
        return np.asarray(alignment.tilt_angles_deg, dtype=np.float64)  # .aln / portal: the refined angles
    if angles is None:
        raise ValueError(f"{images_path}: no tilt angles; give the angles column (.tlt/.rawtlt/.mdoc)")
    check_angles_match(angles, n_images, angles_path=angles_path, images_path=images_path)
    return angles[np.asarray(alignment.raw_indices)]


@reads("align_tilt_series")
def run(
    *,
    tilt_series_path: Path,
    dataset: DatasetRow,
    out: Path,
    angles_out: Path,
    angles_path: Path | None = None,
    alignment_path: Path | None = None,
    meta_out: Path | None = None,
    cfg: AlignConfig | None = None,
) -> TiltAlignment:
    """Align ``tilt_series_path`` and write ``out`` (MRC), ``angles_out`` (.tlt) and ``meta_out`` (JSON).

    The row gives ``tilt_axis_deg`` and ``voxel_size_angstrom`` (the output's pixel size:
    overrides the header, binned already when ``cfg.bin_factor`` > 1); the files are
    the rule's inputs; ``cfg`` (default :class:`AlignConfig`) the background and
    binning. ``meta_out`` defaults to ``out`` with suffix ``.json``. Errors from the
    inputs are re-raised as one line prefixed with the dataset's name.
    """
    cfg = AlignConfig() if cfg is None else cfg
    factor = cfg.bin_factor
    tilt_axis_deg, dataset_name = dataset.tilt_axis_deg, dataset.dataset
    voxel_size_angstrom = dataset.voxel_size_angstrom
    tilt_series_path, out, angles_out = Path(tilt_series_path), Path(out), Path(angles_out)
    meta_out = out.with_suffix(".json") if meta_out is None else Path(meta_out)
    angles_path = Path(angles_path) if angles_path else None
    alignment_path = Path(alignment_path) if alignment_path else None
    start = time.perf_counter()
    try:
        raw, voxel = read_mrc_memmap(tilt_series_path, voxel_size_angstrom=voxel_size_angstrom)
        n_images = raw.shape[0]
        angles = read_tilt_angles(angles_path) if angles_path is not None else None
        alignment = load_alignment(alignment_path, tilt_axis_deg=tilt_axis_deg, n_images=n_images,
                                   images_path=tilt_series_path, angles=angles, angles_path=angles_path)
        kept_angles = _angles_of_kept_views(alignment, angles, angles_path=angles_path, n_images=n_images,
                                            images_path=tilt_series_path)
        shape = _aligned_shape(alignment, raw.shape[1:], tilt_axis_deg=tilt_axis_deg,
                               exact=alignment_path is None and factor == 1, bin_factor=factor)
    except ValueError as err:
        raise ValueError(f"dataset {dataset_name}: {err}" if dataset_name else str(err)) from None
    # exact quarter turns (no interpolation) unless binning resamples anyway
    quarter = quarter_turns(tilt_axis_deg) if alignment_path is None and tilt_axis_deg is not None else None
    quarter = quarter if factor == 1 else None
    if voxel_size_angstrom is None:
        voxel *= factor  # the raw header's pixel size, binned
    indices = np.asarray(alignment.raw_indices)
    levels = np.zeros(indices.size)
    with stage_outputs(out, angles_out, meta_out) as (tmp_out, tmp_angles, tmp_meta):
        with open_mrc_for_writing(tmp_out, (indices.size, *shape), voxel_size_angstrom=voxel,
                                  labels=[f"cryo_pipeline align_tilt_series {alignment.source}"[:80]]) as stack:
            for row, index in enumerate(indices):
                image = np.asarray(raw[index], dtype=np.float32)
                if cfg.subtract_background:
                    levels[row] = border_median(image)
                    image = image - np.float32(levels[row])
                if quarter is not None:
                    stack[row] = np.rot90(image, quarter)
                else:
                    stack[row] = align_and_bin_image(image, alignment.matrices_xy[row],
                                                     alignment.shifts_xy_px[row], out_shape_yx=shape,
                                                     bin_factor=factor)
        write_tilt_angles(tmp_angles, kept_angles)
        rotations = alignment.rotations_deg
        shifts = np.asarray(alignment.shifts_xy_px)
        record = {
            "source": alignment.source, "exact_quarter_turns": quarter,
            "rotation_deg": {"mean": float(rotations.mean()), "min": float(rotations.min()),
                             "max": float(rotations.max())},
            "shift_px": {"max_abs_x": float(np.abs(shifts[:, 0]).max()), "max_abs_y": float(np.abs(shifts[:, 1]).max())},
            "raw_indices": indices.tolist(), "n_raw_images": int(n_images),
            "raw_shape_yx": list(raw.shape[1:]), "aligned_shape_yx": list(shape), "bin_factor": factor,
            "background_subtracted": {"min": float(levels.min()), "max": float(levels.max())}
            if cfg.subtract_background else None,
        }
        write_stage_meta(tmp_meta, stage="align_tilt_series", config=cfg, dataset=dataset,
                         runtime_s=time.perf_counter() - start,
                         extra={"alignment": record, "tilt_axis_deg": tilt_axis_deg, "voxel_size_angstrom": voxel})
    log.info("aligned %d of %d images of %s (%s) -> %s at %g A/px (bin %d), rotation %.2f deg%s", indices.size,
             n_images, tilt_series_path, alignment.source, shape, voxel, factor, float(rotations.mean()),
             f", background {levels.min():g}..{levels.max():g} subtracted" if cfg.subtract_background else "")
    return alignment


def _aligned_shape(alignment: TiltAlignment, raw_shape_yx, *, tilt_axis_deg, exact: bool, bin_factor: int):
    """The output images' ``(h, w)``: the exact quarter turn's, else every raw pixel kept; binned."""
    quarter = quarter_turns(tilt_axis_deg) if exact and tilt_axis_deg is not None else None
    if quarter is not None:
        return tuple(raw_shape_yx[::-1]) if quarter in (1, 3) else tuple(raw_shape_yx)
    return binned_shape_yx(alignment.aligned_shape_yx(raw_shape_yx), bin_factor)
