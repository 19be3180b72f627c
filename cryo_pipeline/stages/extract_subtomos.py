"""Stage ``extract_subtomos``: cubes inside the mask → one Zarr store + a TSV table per tomogram.

Every check (mask shape, cube size vs tomogram, empty mask, no cube reaching
``min_mask_fraction``) runs before anything is written, and fails with one line that
names the tomogram, the mask fraction, the sizes and the parameter to change.
Cubes are stored raw; the whole-tomogram mean/std (and inside the mask) go into the
store's ``normalization`` attribute, so training normalises every cube the same way
(never per cube, which is what gives IsoNet its patch seams).

Memory: the tomogram and the mask are memory-mapped (:func:`cryo_pipeline.io.mrc.read_mrc_memmap`),
the mask is held as booleans (1 byte per voxel), local mask fractions are computed one
z-slice at a time, statistics in z-slabs, and cubes are cropped and written one at a
time, so the peak resident memory stays under twice the tomogram's size
(``python -m bench extraction``).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import ExtractConfig
from cryo_pipeline.io.mrc import read_mrc_header, read_mrc_memmap
from cryo_pipeline.io.provenance import provenance_record
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter
from cryo_pipeline.io.tables import write_subtomo_table
from cryo_pipeline.ops.extraction import (
    crop_cube,
    require_cube_fits,
    sample_centres,
    split_train_validation,
    stored_cube_px,
)

log = logging.getLogger(__name__)

_SLAB_VOXELS = 1 << 20  # voxels per z-slab when streaming statistics (8 MiB as float64)


def _merge(acc: list[float], values: np.ndarray) -> None:
    """Add ``values`` to a running [count, mean, M2] (Chan et al.'s parallel update, float64)."""
    n_b = values.size
    if n_b == 0:
        return
    mean_b = float(values.mean(dtype=np.float64))
    m2_b = float(np.square(values - mean_b, dtype=np.float64).sum())
    n_a, mean_a, m2_a = acc
    n = n_a + n_b
    delta = mean_b - mean_a
    acc[:] = [n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n]


def tomogram_statistics(volume: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean and (population) std of the whole `(d, h, w)` tomogram and inside ``mask``, in z-slabs.

    Returns
    -------
    dict
        ``mean``, ``std``, ``mean_in_mask``, ``std_in_mask`` (float64 accumulation).
    """
    whole, inside = [0, 0.0, 0.0], [0, 0.0, 0.0]
    step = max(1, _SLAB_VOXELS // (volume.shape[1] * volume.shape[2]))
    for z0 in range(0, volume.shape[0], step):
        slab = np.asarray(volume[z0:z0 + step], dtype=np.float64)
        _merge(whole, slab)
        _merge(inside, slab[mask[z0:z0 + step]])
    return {"mean": whole[1], "std": math.sqrt(whole[2] / whole[0]),
            "mean_in_mask": inside[1], "std_in_mask": math.sqrt(inside[2] / inside[0]) if inside[0] else 0.0}


@reads("extract_subtomos")
def run(
    *,
    tomogram_path: Path,
    mask_path: Path,
    dataset: DatasetRow,
    cfg: ExtractConfig,
    out_store: Path,
    out_table: Path,
) -> dict[str, Any]:
    """Cut cubes of ``tomogram_path`` where ``mask_path`` is set; write the store, the table and a record.

    Parameters
    ----------
    tomogram_path : Path
        `(d, h, w)` tomogram (MRC); the sheet's voxel size overrides the header's.
    mask_path : Path
        `(d, h, w)` mask MRC from ``make_mask`` (non-zero = inside).
    dataset : DatasetRow
        Name (for messages), seed (centres and split), tilt range, voxel size.
    cfg : ExtractConfig
        Cube size, count, sampling, minimum mask fraction, enlargement, validation split.
    out_store : Path
        Subtomogram Zarr store (:mod:`cryo_pipeline.io.subtomo_store`); its record is
        ``meta_path_for(out_store)``.
    out_table : Path
        TSV: ``index, z, y, x, mask_fraction, split`` in store order.

    Returns
    -------
    dict
        The summary also written to the record (counts, fractions, normalisation).

    Raises
    ------
    ValueError
        Mask and tomogram shapes differ, the tomogram is thinner than the stored cube,
        the mask is empty, or no cube reaches ``min_mask_fraction``; nothing is written.
    """
    name = dataset.dataset
    tomogram_path, mask_path = Path(tomogram_path), Path(mask_path)
    shape = tuple(read_mrc_header(tomogram_path)["shape_zyx"])
    mask_shape = tuple(read_mrc_header(mask_path)["shape_zyx"])
    if mask_shape != shape:
        raise ValueError(f"mask {mask_path} of {name} is {mask_shape} voxels but the tomogram {tomogram_path} is "
                         f"{shape}; re-run make_mask on this tomogram")
    stored = stored_cube_px(cfg.cube_size_px, enlarge_for_rotation=cfg.enlarge_for_rotation)
    require_cube_fits(shape, stored_px=stored, name=name)

    start = time.perf_counter()
    tomogram, voxel = read_mrc_memmap(tomogram_path, voxel_size_angstrom=dataset.voxel_size_angstrom)
    mask = read_mrc_memmap(mask_path, voxel_size_angstrom=voxel)[0] != 0  # 1 byte per voxel in memory
    sample = sample_centres(mask, cube_px=cfg.cube_size_px, n=cfg.n_subtomos, seed=dataset.seed,
                            sampling=cfg.sampling, stride_px=cfg.grid_stride_px,
                            min_mask_fraction=cfg.min_mask_fraction, stored_px=stored, name=name)
    centres, fractions, info = sample
    n_cubes = len(centres)
    is_val = split_train_validation(n_cubes, validation_fraction=cfg.validation_fraction, seed=dataset.seed)
    stats = tomogram_statistics(tomogram, mask)
    del mask
    if not all(math.isfinite(v) for v in stats.values()):
        raise ValueError(f"tomogram {name} ({tomogram_path}) holds NaN or Inf voxels; fix the reconstruction")

    if info["took_all"]:
        log.warning("only %d cubes of %d³ in %s reach min_mask_fraction=%g (%d requested): all of them are taken",
                    n_cubes, cfg.cube_size_px, name, cfg.min_mask_fraction, cfg.n_subtomos)
    log.info("extract %s: %d cubes of %d³ (stored %d³, %s sampling) from %d candidates; mask covers %.1f %%, "
             "cube mask fractions %.2f..%.2f; %d train / %d val", name, n_cubes, cfg.cube_size_px, stored,
             cfg.sampling, info["n_candidates"], 100 * info["mask_fraction"], fractions.min(), fractions.max(),
             n_cubes - int(is_val.sum()), int(is_val.sum()))
    summary = {
        "n_cubes": n_cubes, "n_train": n_cubes - int(is_val.sum()), "n_val": int(is_val.sum()),
        "n_requested": cfg.n_subtomos, "n_candidates": info["n_candidates"], "took_all": info["took_all"],
        "mask_fraction": info["mask_fraction"], "best_fraction": info["best_fraction"],
        "min_cube_mask_fraction": float(fractions.min()), "cube_size_px": stored,
        "cube_size_core_px": cfg.cube_size_px, "normalization": stats,
        "tomogram_path": str(tomogram_path), "mask_path": str(mask_path),
    }
    record = provenance_record(config=cfg)
    with stage_outputs(out_store, out_table, meta_path_for(out_store)) as (tmp_store, tmp_table, tmp_meta):
        with SubtomoStoreWriter(tmp_store, n_cubes=n_cubes, cube_px=stored, cube_core_px=cfg.cube_size_px,
                                voxel_size_angstrom=voxel, tilt_min_deg=dataset.tilt_min_deg,
                                tilt_max_deg=dataset.tilt_max_deg, source_tomogram=str(tomogram_path),
                                normalization=stats, provenance=record) as writer:
            for i, centre in enumerate(tqdm(centres, desc=f"extract {name}", unit="cube", disable=None)):
                writer.write(i, crop_cube(tomogram, centre, stored))
        write_subtomo_table(tmp_table, centres=centres, mask_fractions=fractions, is_validation=is_val)
        runtime = time.perf_counter() - start
        write_stage_meta(tmp_meta, stage="extract_subtomos", config=cfg, dataset=dataset, runtime_s=runtime,
                         extra=summary)
    log.info("extract %s: wrote %s and %s in %.1f s (%.0f cubes/s)", name, out_store, out_table, runtime,
             n_cubes / max(runtime, 1e-9))
    return summary
