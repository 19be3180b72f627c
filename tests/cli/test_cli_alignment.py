"""align-tilt-series, fetch-portal and export-relion run in-process: outputs on success, one error line and
exit 2 on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cryo_pipeline.cli.main import main
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.relion_star import read_star_loop


pytestmark = pytest.mark.usefixtures("restore_logging")  # main() reconfigures the root logger


def test_align_tilt_series_command(tmp_path, capsys):
    raw = np.random.default_rng(0).normal(size=(3, 6, 9)).astype(np.float32)
    write_mrc(tmp_path / "raw.mrc", raw, voxel_size_angstrom=2.0)
    (tmp_path / "raw.tlt").write_text("-3\n0\n3\n")
    common = ["align-tilt-series", "--tilt-series", str(tmp_path / "raw.mrc"), "--angles", str(tmp_path / "raw.tlt")]
    assert main([*common, "--dataset-json", '{"dataset": "d7", "tilt_axis_deg": 90, "voxel_size_angstrom": null}',
                 "--out", str(tmp_path / "a.mrc"), "--angles-out", str(tmp_path / "a.tlt")]) == 0
    np.testing.assert_array_equal(read_mrc(tmp_path / "a.mrc").data, np.rot90(raw, 1, axes=(1, 2)))
    assert (tmp_path / "a.json").is_file()
    status = main([*common, "--alignment", str(tmp_path / "absent.xf"),
                   "--dataset-json", '{"dataset": "d7", "tilt_axis_deg": null, "voxel_size_angstrom": null}',
                   "--out", str(tmp_path / "b.mrc"), "--angles-out", str(tmp_path / "b.tlt")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and err.startswith("error: dataset d7: ") and "absent.xf" in err
    assert not (tmp_path / "b.mrc").exists()


def test_fetch_portal_command_rejects_a_malformed_id(capsys, tmp_path):
    status = main(["fetch-portal", "--dataset-json", '{"dataset": "p1", "source": "run-333", "data_kind": "tiltseries"}',
                   "--folder", str(tmp_path / "r")])
    assert status == 2
    assert "error: dataset p1: portal source 'run-333' must be run:<id>" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_export_relion_command(tmp_path):
    write_mrc(tmp_path / "v.mrc", np.zeros((4, 6, 8), np.float32), voxel_size_angstrom=5.0)
    row = ('{"dataset": "d1", "kind": "tomogram", "source": "v.mrc", "voxel_size_angstrom": 5.0, '
           '"tilt_min_deg": -60, "tilt_max_deg": 60}')
    assert main(["export-relion", "--dataset-json", row, "--volume", str(tmp_path / "v.mrc"),
                 "--out", str(tmp_path / "tomograms.star")]) == 0
    (entry,) = read_star_loop(tmp_path / "tomograms.star")
    assert entry["rlnTomoName"] == "d1" and entry["rlnTomoSizeX"] == "8"
