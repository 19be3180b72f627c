"""Stage ``bin_tomogram``: anti-aliased binning by Fourier cropping."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import BinConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, write_stage_meta
from cryo_pipeline.ops.binning import bin_volume_3d, binned_voxel_size_angstrom

log = logging.getLogger(__name__)


@reads("bin_tomogram")
def run(*, tomogram_path: Path, dataset: DatasetRow, cfg: BinConfig, out: Path) -> None:
    """Bin ``tomogram_path`` by ``cfg.factor`` and write it with the binned voxel size.

    The voxel size in the output header is the input's × (n_in / n_out) along x (equal to
    the factor up to rounding of the output size). A factor of 1 copies the tomogram.
    """
    loaded = read_mrc(Path(tomogram_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    start = time.perf_counter()
    binned = bin_volume_3d(loaded.data, factor=cfg.factor)
    runtime = time.perf_counter() - start
    voxel_size = float(
        binned_voxel_size_angstrom(loaded.voxel_size_angstrom, loaded.data.shape[2], binned.shape[2])
    )
    log.info(
        "binned %s by %g -> %s, voxel %.3f -> %.3f A",
        loaded.data.shape,
        cfg.factor,
        binned.shape,
        loaded.voxel_size_angstrom,
        voxel_size,
    )
    write_mrc(out, binned, voxel_size_angstrom=voxel_size, labels=[f"cryo_pipeline binned x{cfg.factor:g}"])
    write_stage_meta(meta_path_for(out), stage="bin_tomogram", config=cfg, dataset=dataset, runtime_s=runtime)
