"""The CN slab plan file (cryo_pipeline.io.slab_plan): round trip, checks, and the slabs' paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryo_pipeline.io.slab_plan import (
    SlabPlanRecord,
    init_model_path,
    plan_from_json,
    plan_to_json,
    read_slab_plan,
    seed_model_path,
    slab_paths,
    write_slab_plan,
)
from cryo_pipeline.ops.slabs import plan_slabs


def _record(plan) -> SlabPlanRecord:
    return SlabPlanRecord(plan=plan, volume_shape_zyx=(8, plan.height_px, 10), voxel_size_angstrom=10.0,
                          tilt_indices=(0, 1, 3), angles_deg=(-60.0, -58.0, 60.0), tilt_series_rms=2.0,
                          value_scale=0.25, n_parameters=1234, params_per_voxel=0.5, schedule="chain",
                          tilt_series="ts.mrc", dataset={"dataset": "d"}, provenance={"package": "cryo_pipeline"})


def test_plan_round_trips_through_json_and_rejects_edited_origins():
    plan = plan_slabs(100, slab_px=7, halo_px=3)
    data = plan_to_json(plan)
    assert data["n_slabs"] == 15 and data["boundaries_y"] == list(plan.boundaries_y)
    assert plan_from_json(json.loads(json.dumps(data))) == plan
    data["origins_y"][3] += 1
    with pytest.raises(ValueError, match="do not match"):
        plan_from_json(data)


def test_record_round_trips_and_keeps_its_key_order(tmp_path):
    record = _record(plan_slabs(20, slab_px=4, halo_px=1))
    write_slab_plan(tmp_path / "slabs.json", record)
    assert read_slab_plan(tmp_path / "slabs.json") == record
    keys = list(json.loads((tmp_path / "slabs.json").read_text()))
    assert keys[:7] == ["height_px", "slab_px", "halo_px", "window_px", "origins_y", "n_slabs", "boundaries_y"]
    assert keys[7:] == ["volume_shape_zyx", "voxel_size_angstrom", "tilt_indices", "angles_deg", "tilt_series_rms",
                        "value_scale", "seed_slab", "n_parameters", "params_per_voxel", "schedule", "tilt_series",
                        "dataset", "provenance"]
    assert record.seed_slab == 2 and record.n_slabs == 5 and record.tilt_range_deg == (-60.0, 60.0)


def test_missing_or_broken_plans_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run plan_slabs first"):
        read_slab_plan(tmp_path / "none.json")
    record = _record(plan_slabs(20, slab_px=4, halo_px=1)).to_json()
    del record["value_scale"]
    (tmp_path / "bad.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"bad\.json: not a valid slab plan \(KeyError: 'value_scale'\)"):
        read_slab_plan(tmp_path / "bad.json")


def test_slab_paths_and_the_weights_each_slab_starts_from():
    plan_file = Path("results/r/d/cn/slabs.json")
    assert slab_paths(plan_file, 3).tiles == Path("results/r/d/cn/slabs/slab_3.zarr")
    assert slab_paths(plan_file, 3).record == Path("results/r/d/cn/slabs/slab_3.json")
    assert slab_paths(plan_file, 3).model == Path("results/r/d/cn/slabs/slab_3.pt")
    assert seed_model_path(plan_file) == Path("results/r/d/cn/seed/model.pt")
    plan = plan_slabs(32, slab_px=8, halo_px=2)  # 4 slabs, seed slab 2
    assert init_model_path(plan_file, 0, schedule="seed") == seed_model_path(plan_file)
    chain = {i: init_model_path(plan_file, i, schedule="chain", plan=plan) for i in range(4)}
    assert chain == {0: slab_paths(plan_file, 1).model, 1: slab_paths(plan_file, 2).model,
                     2: seed_model_path(plan_file), 3: slab_paths(plan_file, 2).model}
    with pytest.raises(ValueError, match="needs the slab plan"):
        init_model_path(plan_file, 1, schedule="chain")
