"""Stages reconstruct_reference and split_halves on a small simulated ±76° series."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import ReferenceConfig
from cryo_pipeline.io.angles import read_tilt_angles, write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.phantoms import make_phantom
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.stages import reconstruct_reference, split_halves
from cryo_pipeline.io.stage_records import meta_path_for

ANGLES = np.arange(-76.0, 76.5, 4.0)


@pytest.fixture
def series(tmp_path):
    truth = make_phantom("mixed_shapes", shape_zyx=(24, 20, 32), seed=0)
    path, angles = tmp_path / "ts.mrc", tmp_path / "ts.tlt"
    write_mrc(path, project_3d(truth, ANGLES), voxel_size_angstrom=7.0)
    write_tilt_angles(angles, ANGLES)
    return path, angles


def _row(path, angles, **values):
    base = {"dataset": "needle", "kind": "tiltseries", "source": str(path), "angles": str(angles),
            "tilt_min_deg": -60.0, "tilt_max_deg": 60.0, "methods": "wbp"}
    return DatasetRow.model_validate({**base, **values})


def test_reference_is_reconstructed_from_the_wider_range(tmp_path, series):
    row = _row(*series, reference_tilt_min_deg=-76, reference_tilt_max_deg=76)
    out = tmp_path / "reference" / "volume.mrc"
    out.parent.mkdir()
    grid = tmp_path / "grid.mrc"
    write_mrc(grid, np.zeros((24, 20, 32), np.float32), voxel_size_angstrom=7.0)
    reconstruct_reference.run(tilt_series_path=series[0], angles_path=series[1], dataset=row,
                              cfg=ReferenceConfig(method="sirt", sirt_iterations=10), out=out, grid_volume_path=grid)
    volume = read_mrc(out)
    assert volume.data.shape == (24, 20, 32) and volume.voxel_size_angstrom == 7.0 and volume.data.min() >= 0
    record = json.loads(meta_path_for(out).read_text())
    assert record["heldout_angles_deg"] == [-76.0, -72.0, -68.0, -64.0, 64.0, 68.0, 72.0, 76.0]
    assert len(record["reference_angles_deg"]) == ANGLES.size
    assert 1.0 <= record["resolution_shell"] <= 10.0


def test_reference_needs_held_out_tilts(tmp_path, series):
    row = _row(*series, tilt_min_deg=-76, tilt_max_deg=76, reference_tilt_min_deg=-76, reference_tilt_max_deg=76)
    with pytest.raises(ValueError, match="dataset needle, columns reference_tilt_min_deg/max_deg: .*nothing is held"):
        reconstruct_reference.run(tilt_series_path=series[0], angles_path=series[1], dataset=row,
                                  cfg=ReferenceConfig(), out=tmp_path / "r.mrc")
    assert not (tmp_path / "r.mrc").exists()


def test_halves_alternate_over_the_working_tilts(tmp_path, series):
    row = _row(*series, halves="alternate")
    outs = {k: tmp_path / f"{k}" for k in ("even.mrc", "even.tlt", "odd.mrc", "odd.tlt")}
    split_halves.run(tilt_series_path=series[0], angles_path=series[1], dataset=row, out_even=outs["even.mrc"],
                     out_odd=outs["odd.mrc"], angles_even_out=outs["even.tlt"], angles_odd_out=outs["odd.tlt"])
    even, odd = read_tilt_angles(outs["even.tlt"]), read_tilt_angles(outs["odd.tlt"])
    np.testing.assert_array_equal(even, np.arange(-60.0, 60.5, 8.0))
    np.testing.assert_array_equal(odd, np.arange(-56.0, 60.5, 8.0))
    full = read_mrc(series[0]).data
    np.testing.assert_array_equal(read_mrc(outs["odd.mrc"]).data, full[np.isin(ANGLES, odd)])
    assert read_mrc(outs["even.mrc"]).voxel_size_angstrom == 7.0


def test_halves_with_too_few_tilts_name_the_dataset_and_column(tmp_path, series):
    row = _row(*series, tilt_min_deg=-12, tilt_max_deg=12)  # 7 working tilts: halves of 4 and 3
    row = row.model_copy(update={"halves": "alternate"})  # as a fetched empiar row arrives, unchecked
    with pytest.raises(ValueError, match="dataset needle .*: column halves: a half has only 3 tilt"):
        split_halves.run(tilt_series_path=series[0], angles_path=series[1], dataset=row,
                         out_even=tmp_path / "e.mrc", out_odd=tmp_path / "o.mrc",
                         angles_even_out=tmp_path / "e.tlt", angles_odd_out=tmp_path / "o.tlt")
    assert not any(tmp_path.glob("[eo].*"))


def test_evaluate_scores_against_the_full_range_reference(tmp_path, series):
    import pandas as pd

    from cryo_pipeline.config.stages import EvaluateConfig
    from cryo_pipeline.ops.wbp import weighted_backprojection_3d
    from cryo_pipeline.stages import evaluate

    row = _row(*series, reference_tilt_min_deg=-76, reference_tilt_max_deg=76, halves="alternate")
    reference = tmp_path / "reference.mrc"
    grid = tmp_path / "grid.mrc"
    write_mrc(grid, np.zeros((24, 20, 32), np.float32), voxel_size_angstrom=7.0)
    reconstruct_reference.run(tilt_series_path=series[0], angles_path=series[1], dataset=row,
                              cfg=ReferenceConfig(), out=reference, grid_volume_path=grid)
    data = read_mrc(series[0]).data
    volumes = {}
    for name, keep in (("wbp", np.abs(ANGLES) <= 60), ("even", np.isin(ANGLES, np.arange(-60, 61, 8))),
                       ("odd", np.isin(ANGLES, np.arange(-56, 61, 8)))):
        volumes[name] = tmp_path / f"{name}.mrc"
        write_mrc(volumes[name], weighted_backprojection_3d(data[keep], ANGLES[keep], volume_shape_zyx=(24, 20, 32)),
                  voxel_size_angstrom=7.0)
    out, heldout = tmp_path / "metrics.tsv", tmp_path / "heldout_tilts.tsv"
    inputs = evaluate.ValidationInputs(reference_path=reference, tilt_series_path=series[0], angles_path=series[1],
                                       half_paths=(volumes["even"], volumes["odd"]), method_input_path=volumes["wbp"])
    evaluate.run(volume_path=volumes["wbp"], dataset=row, method="wbp", cfg=EvaluateConfig(), out=out,
                 curves_out=tmp_path / "curves.json", validation=inputs, heldout_out=heldout)
    metrics = pd.read_csv(out, sep="\t").iloc[0]
    assert metrics["reference"] == "full_range" and np.isfinite(metrics["psnr_db"])
    for column in ("band_fsc_mean", "heldout_ncc_mean", "halfmap_fsc_resolution_angstrom",
                   "halfmap_dfsc_missing_mean", "measured_region_fsc_mean", "isotropy_z_x"):
        assert np.isfinite(metrics[column]), column
    assert metrics["measured_region_fsc_mean"] == pytest.approx(1.0)
    table = pd.read_csv(heldout, sep="\t")
    assert list(table["angle_deg"]) == [-76.0, -72.0, -68.0, -64.0, 64.0, 68.0, 72.0, 76.0]
    assert table["ncc"].between(-1, 1).all() and set(table["method"]) == {"wbp"}
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert len(curves["band_fsc_curve"]) == len(curves["frequency_per_angstrom"]) == 11
