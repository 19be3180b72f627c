"""Stage ``export_relion``: one RELION-5 ``tomograms.star`` listing a method's corrected tomograms.

Each listed tomogram is a method output (``volume.mrc``) of one dataset; its size and
voxel size come from the MRC header, the tilt-series pixel size and the CTF values
(``voltage_kv``, ``cs_mm``, ``amplitude_contrast``) from the dataset's sheet row. Rows
without CTF values leave those columns out (see :mod:`cryo_pipeline.io.relion_star`).
Paths are written as given (the workflow passes them relative to its working
directory, which is then RELION's project folder).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import view_row
from cryo_pipeline.io.mrc import read_mrc_header
from cryo_pipeline.io.relion_star import RelionTomogram, write_tomograms_star

log = logging.getLogger(__name__)


def relion_tomogram(dataset: DatasetRow, volume_path: Path) -> RelionTomogram:
    """The ``tomograms.star`` row of one corrected tomogram of ``dataset``."""
    header = read_mrc_header(volume_path)
    voxel = float(header["voxel_size_angstrom"])
    if voxel <= 0:
        raise ValueError(f"{volume_path}: the header has no voxel size; RELION needs one")
    return RelionTomogram(
        name=dataset.dataset, tomogram_path=str(volume_path), shape_zyx=tuple(header["shape_zyx"]),
        voxel_size_angstrom=voxel, tilt_series_pixel_size_angstrom=dataset.voxel_size_angstrom or voxel,
        voltage_kv=dataset.voltage_kv, cs_mm=dataset.cs_mm,
        amplitude_contrast=dataset.amplitude_contrast if dataset.voltage_kv is not None else None,
    )


def run(*, datasets: Sequence[DatasetRow], volumes: Sequence[Path], out: Path) -> list[str]:
    """Write ``out`` for ``volumes[i]`` of ``datasets[i]``; return the columns written."""
    if len(datasets) != len(volumes):
        raise ValueError(f"{out}: {len(datasets)} datasets but {len(volumes)} volumes")
    rows = [view_row("export_relion", d) for d in datasets]  # reads only what the rule declares
    columns = write_tomograms_star(out, [relion_tomogram(d, Path(v)) for d, v in zip(rows, volumes, strict=True)])
    log.info("wrote %s: %d tomogram(s), columns %s", out, len(volumes), ", ".join(columns))
    return columns
