"""predict-cryogen-tiles + stitch-tiles: the split inference gives what predict-cryogen gives."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from cryo_pipeline.cli.main import main
from cryo_pipeline.inference.tile_groups import tile_group
from cryo_pipeline.io.model_files import GENERATOR_KIND as MODEL_KIND
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import write_stage_meta
from cryo_pipeline.io.tile_store import open_tile_store, write_tile_store
from cryo_pipeline.io.zarr_store import read_volume_zarr
from cryo_pipeline.models import UNetPlusPlus3d
from cryo_pipeline.ops.blending import tile_origins_3d

DATASET = json.dumps({"dataset": "tomo", "kind": "tomogram", "source": "tomo.mrc", "voxel_size_angstrom": 11.0,
                      "tilt_min_deg": -55, "tilt_max_deg": 50, "methods": "isonet"})
CONFIG = json.dumps({"tile_px": 16, "overlap_px": 4, "batch_size": 3, "keep_measured": True})
EXECUTION = json.dumps({"device": "cpu", "predict_n_jobs": 3})
TRAIN_S = 12.5
SHAPE = (28, 36, 32)  # with tile 16, overlap 4: 2 x 3 x 3 tiles


@pytest.fixture(autouse=True)
def _restore_logging_and_threads():
    """``main`` reconfigures the root logger and torch's threads; restore both."""
    root = logging.getLogger()
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    torch.set_num_threads(threads)


def cli(*args: object) -> int:
    """Run one command in-process with one thread (torch; one Dask worker for stitch-tiles)."""
    return main(["--threads", "1", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A tomogram MRC and a generator file as train-cryogen writes them (with its record)."""
    root = tmp_path_factory.mktemp("split")
    volume = (np.random.default_rng(0).standard_normal(SHAPE) * 2 + 3).astype(np.float32)
    write_mrc(root / "tomo.mrc", volume, voxel_size_angstrom=11.0)
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=2, norm="group")
    with torch.no_grad():  # not the identity
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=torch.Generator().manual_seed(1)))
    torch.save({"kind": MODEL_KIND, "method": "isonet", "architecture": {"base_channels": 4, "depth": 2,
                "norm": "group"}, "generator": model.state_dict(), "normalization": (3.0, 2.0),
                "tilt_range_deg": (-55.0, 50.0)}, root / "model.pt")
    write_stage_meta(root / "model.json", stage="train_cryogen", config=None, dataset=None, runtime_s=TRAIN_S)
    return {"root": root, "tomogram": root / "tomo.mrc", "model": root / "model.pt"}


def _common(inputs):
    return ["--tomogram", inputs["tomogram"], "--model", inputs["model"], "--dataset-json", DATASET,
            "--config-json", CONFIG, "--execution-json", EXECUTION]


def test_three_groups_stitched_equal_the_single_job(inputs, tmp_path):
    assert cli("predict-cryogen", *_common(inputs), "--out", tmp_path / "single.mrc",
               "--out-zarr", tmp_path / "single.zarr") == 0
    stores = [tmp_path / "tiles" / f"group_{g}.zarr" for g in range(3)]
    for g, store in enumerate(stores):
        assert cli("predict-cryogen-tiles", *_common(inputs), "--group", g, "--n-groups", 3,
                   "--out-tiles", store) == 0
        _, attrs = open_tile_store(store)
        assert (attrs["group"], attrs["n_groups"], attrs["voxel_size_angstrom"]) == (g, 3, 11.0)
        record = json.loads(store.with_suffix(".json").read_text())
        assert record["stage"] == "predict_cryogen_tiles" and record["train_s"] == TRAIN_S
    assert sum(json.loads(s.with_suffix(".json").read_text())["n_tiles"] for s in stores) == 2 * 3 * 3
    out = tmp_path / "isonet" / "volume.mrc"
    assert cli("stitch-tiles", "--tile-stores", *stores,
               "--meta", *[s.with_suffix(".json") for s in stores],
               "--out", out, "--out-zarr", tmp_path / "isonet" / "volume.zarr") == 0
    single, stitched = read_mrc(tmp_path / "single.mrc"), read_mrc(out)
    assert stitched.voxel_size_angstrom == pytest.approx(11.0)
    assert np.abs(single.data - read_mrc(inputs["tomogram"]).data).mean() > 0.1  # the model did something
    np.testing.assert_allclose(stitched.data, single.data, atol=1e-5, rtol=0)
    zarr_data, attrs = read_volume_zarr(tmp_path / "isonet" / "volume.zarr")
    np.testing.assert_array_equal(zarr_data, stitched.data)
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == (-55.0, 50.0)
    record = json.loads(out.with_suffix(".json").read_text())
    groups = [json.loads(s.with_suffix(".json").read_text())["predict_s"] for s in stores]
    assert record["stage"] == "stitch_tiles" and record["method"] == "isonet"
    assert record["predict_s"] == pytest.approx(max(groups)) and record["train_s"] == TRAIN_S
    assert record["runtime_s"] == pytest.approx(TRAIN_S + max(groups) + record["stitch_s"])
    assert record["dataset"]["dataset"] == "tomo" and record["config"]["tile_px"] == 16
    assert sorted(p.name for p in (tmp_path / "isonet").iterdir()) == ["volume.json", "volume.mrc", "volume.ome.zarr", "volume.zarr"]


def test_stitch_with_a_group_missing_fails_clearly(tmp_path, capsys):
    origins = tile_origins_3d(SHAPE, tile_zyx=16, overlap_zyx=4)
    stores = []
    for g in range(2):  # groups 0 and 1 of 3
        part = origins[tile_group(origins, group=g, n_groups=3)]
        stores.append(tmp_path / f"group_{g}.zarr")
        write_tile_store(stores[-1], np.zeros((len(part), 16, 16, 16), np.float32), part, volume_shape_zyx=SHAPE,
                         tile_px=16, overlap_px=4, voxel_size_angstrom=11.0, group=g, n_groups=3)
    assert cli("stitch-tiles", "--tile-stores", *stores, "--out", tmp_path / "v.mrc",
               "--out-zarr", tmp_path / "v.zarr") == 2
    assert f"6 tile(s) missing, origins [{origins[12].tolist()}" in capsys.readouterr().err
    assert not (tmp_path / "v.mrc").exists() and not (tmp_path / "v.zarr").exists()


def test_predict_tiles_rejects_a_bad_group_or_a_thin_tomogram(inputs, tmp_path, capsys):
    assert cli("predict-cryogen-tiles", *_common(inputs), "--group", 3, "--n-groups", 3,
               "--out-tiles", tmp_path / "g.zarr") == 2
    assert "group 3 must be in [0, n_groups=3)" in capsys.readouterr().err
    thin = json.loads(CONFIG) | {"tile_px": 48}
    args = _common(inputs)
    args[args.index("--config-json") + 1] = json.dumps(thin)
    assert cli("predict-cryogen-tiles", *args, "--group", 0, "--n-groups", 3, "--out-tiles", tmp_path / "g.zarr") == 2
    assert "execution.predict_n_jobs: 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
