"""bin_tomogram stage: header voxel size follows the binning; content is the Fourier-cropped volume."""

import json

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import BinConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.binning import bin_volume_3d
from cryo_pipeline.stages import bin_tomogram


def _row(**extra) -> DatasetRow:
    values = dict(dataset="tomo.v1", kind="tomogram", source="x.mrc", tilt_min_deg=-60, tilt_max_deg=60)
    return DatasetRow.model_validate({**values, **extra})


@pytest.mark.parametrize(("factor", "voxel_out"), [(2.0, 13.0), (1.5, 9.75), (1.0, 6.5)])
def test_binning_doubles_the_voxel_size_and_matches_the_kernel(tmp_path, factor, voxel_out):
    rng = np.random.default_rng(0)
    tomogram = rng.standard_normal((24, 48, 36)).astype(np.float32)
    write_mrc(tmp_path / "in.mrc", tomogram, voxel_size_angstrom=6.5)
    bin_tomogram.run(tomogram_path=tmp_path / "in.mrc", dataset=_row(), cfg=BinConfig(factor=factor), out=tmp_path / "b.mrc")
    binned = read_mrc(tmp_path / "b.mrc")
    assert binned.voxel_size_angstrom == pytest.approx(voxel_out, rel=1e-3)
    np.testing.assert_allclose(binned.data, bin_volume_3d(tomogram, factor=factor), atol=1e-6)
    meta = json.loads((tmp_path / "b.json").read_text())
    assert meta["stage"] == "bin_tomogram" and meta["runtime_s"] >= 0


def test_sheet_voxel_size_overrides_a_zero_header(tmp_path):
    import mrcfile

    with mrcfile.new(tmp_path / "zero.mrc") as handle:
        handle.set_data(np.ones((8, 16, 16), dtype=np.float32))
        handle.voxel_size = 0.0
    with pytest.raises(ValueError, match="voxel"):
        bin_tomogram.run(tomogram_path=tmp_path / "zero.mrc", dataset=_row(), cfg=BinConfig(factor=2), out=tmp_path / "o.mrc")
    assert not (tmp_path / "o.mrc").exists()
    bin_tomogram.run(
        tomogram_path=tmp_path / "zero.mrc", dataset=_row(voxel_size_angstrom=4.0), cfg=BinConfig(factor=2), out=tmp_path / "o.mrc"
    )
    assert read_mrc(tmp_path / "o.mrc").voxel_size_angstrom == pytest.approx(8.0)
