"""Stage ``split_halves``: a tilt series → its even and odd halves (issue 12, ``halves: alternate``).

The working tilts (inside the sheet's ``tilt_min_deg``/``tilt_max_deg``) are split by
alternating position in ascending angle (:func:`cryo_pipeline.ops.tilts.alternate_halves`);
each half is written as its own tilt series with its angles, and every method then runs
on each half as on a dataset of its own.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow, check_alternate_halves
from cryo_pipeline.config.projection import reads
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles, write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.tilts import alternate_halves, tilts_in_range
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta

log = logging.getLogger(__name__)


@reads("split_halves")
def run(
    *,
    tilt_series_path: Path,
    angles_path: Path,
    dataset: DatasetRow,
    out_even: Path,
    out_odd: Path,
    angles_even_out: Path,
    angles_odd_out: Path,
) -> None:
    """Write the even and the odd half of the working tilts (MRC + ``.tlt`` each, one record)."""
    start = time.perf_counter()
    series = read_mrc(Path(tilt_series_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    angles = read_tilt_angles(Path(angles_path))
    check_angles_match(angles, series.data.shape[0], angles_path=angles_path, images_path=tilt_series_path)
    check_alternate_halves(angles, dataset, where=f"dataset {dataset.dataset} ({angles_path})")
    working = tilts_in_range(angles, tilt_min_deg=dataset.tilt_min_deg, tilt_max_deg=dataset.tilt_max_deg)
    halves = [working[half] for half in alternate_halves(angles[working])]
    outputs = (out_even, angles_even_out, out_odd, angles_odd_out)
    with stage_outputs(*outputs, meta_path_for(out_even)) as (tmp_even, tmp_te, tmp_odd, tmp_to, tmp_meta):
        for indices, image_path, angle_path in zip(halves, (tmp_even, tmp_odd), (tmp_te, tmp_to), strict=True):
            write_mrc(image_path, series.data[indices], voxel_size_angstrom=series.voxel_size_angstrom)
            write_tilt_angles(angle_path, angles[indices])
        write_stage_meta(tmp_meta, stage="split_halves", config=None, dataset=dataset,
                         runtime_s=time.perf_counter() - start,
                         extra={"even_indices": [int(i) for i in halves[0]], "odd_indices": [int(i) for i in halves[1]]})
    log.info("%s: %d working tilts -> halves of %d and %d", dataset.dataset, working.size, halves[0].size,
             halves[1].size)
