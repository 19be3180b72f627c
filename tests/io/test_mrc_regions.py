"""An MRC file written region by region from parallel threads: same voxels, header statistics from sums."""

from __future__ import annotations

import concurrent.futures

import mrcfile
import numpy as np
import pytest

from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.io.mrc_regions import create_mrc_regions, finish_mrc_regions


def test_regions_from_threads_make_the_volume_and_its_header(tmp_path):
    volume = (np.random.default_rng(0).standard_normal((9, 20, 31)) * 2 + 3).astype(np.float32)
    writer = create_mrc_regions(tmp_path / "v.mrc", volume.shape, voxel_size_angstrom=4.5,
                                origin_angstrom=(1.0, 2.0, 3.0), labels=["a region test"])
    boxes = []  # (z, y, x, depth, rows, columns): each voxel once; rows 14.. full width, the others in two parts
    for z in range(0, 9, 3):
        boxes += [(z, 14, 0, 3, 6, 31), (z, 0, 0, 3, 14, 12), (z, 0, 12, 3, 14, 19)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: writer.write(b[:3], volume[b[0]:b[0] + b[3], b[1]:b[1] + b[4], b[2]:b[2] + b[5]]),
                      reversed(boxes)))
    v64 = volume.astype(np.float64)
    finish_mrc_regions(tmp_path / "v.mrc", minimum=float(volume.min()), maximum=float(volume.max()),
                       total=float(v64.sum()), total_sq=float(np.square(v64).sum()), count=volume.size)
    loaded = read_mrc(tmp_path / "v.mrc")
    np.testing.assert_array_equal(loaded.data, volume)
    assert loaded.voxel_size_angstrom == 4.5
    with mrcfile.open(tmp_path / "v.mrc", header_only=True) as mrc:
        assert float(mrc.header.dmean) == pytest.approx(v64.mean(), rel=1e-6)
        assert float(mrc.header.rms) == pytest.approx(v64.std(), rel=1e-6)
        assert (float(mrc.header.dmin), float(mrc.header.dmax)) == (volume.min(), volume.max())
        assert mrc.get_labels()[0] == "a region test"
        assert tuple(float(v) for v in (mrc.header.origin.z, mrc.header.origin.y, mrc.header.origin.x)) == (1, 2, 3)


def test_bad_blocks_counts_and_values_are_refused(tmp_path):
    writer = create_mrc_regions(tmp_path / "v.mrc", (2, 3, 4), voxel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="does not fit the volume"):
        writer.write((1, 0, 0), np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="some regions were not written"):
        finish_mrc_regions(tmp_path / "v.mrc", minimum=0, maximum=0, total=0, total_sq=0, count=23)
    with pytest.raises(ValueError, match="NaN or Inf"):
        finish_mrc_regions(tmp_path / "v.mrc", minimum=0, maximum=np.nan, total=0, total_sq=0, count=24)
