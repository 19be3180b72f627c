"""Stages ``train_cryogen`` and ``predict_cryogen`` called directly: an untrained generator
is the identity (zero-initialised residual head), so prediction must give the input
back through tiling, normalisation, blending and data consistency; bad inputs fail with
one clear message and write nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import PredictConfig, TrainConfig
from cryo_pipeline.io.model_files import GENERATOR_KIND as MODEL_KIND
from cryo_pipeline.io.model_files import save_checkpoint
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta
from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter
from cryo_pipeline.io.zarr_store import open_volume_zarr
from cryo_pipeline.stages import predict_cryogen, train_cryogen
from cryo_pipeline.training.cryogen import build_generator

ROW = DatasetRow.model_validate({"dataset": "tomo_10.00Apx", "kind": "tomogram", "source": "x.mrc",
                                 "tilt_min_deg": -57.0, "tilt_max_deg": 61.0, "voxel_size_angstrom": 10.0})
TINY = TrainConfig(crop_px=16, base_channels=4, depth=2, batch_size=1, epochs=2, steps_per_epoch=3,
                   disc_channels=4, learning_rate=1e-3, learning_rate_energy=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tomogram(tmp_path) -> tuple[Path, np.ndarray]:
    # z and x shorter than a 32 tile (reflect-padded), y longer (two overlapping tiles)
    volume = (3.0 + 2.0 * np.random.default_rng(1).standard_normal((24, 44, 28))).astype(np.float32)
    path = tmp_path / "in" / "tomo.mrc"
    write_mrc(path, volume, voxel_size_angstrom=10.0)
    return path, volume


def _identity_model(path: Path, *, normalization=(3.0, 2.0)) -> Path:
    """A model file as ``train_cryogen`` writes it, with the untrained (identity) generator."""
    torch.manual_seed(0)
    generator = build_generator(TINY)
    save_checkpoint(path, {"kind": MODEL_KIND, "method": "cryogen", "config": TINY.model_dump(mode="json"),
                           "architecture": {"base_channels": 4, "depth": 2, "norm": "group"},
                           "generator": generator.state_dict(), "normalization": normalization,
                           "tilt_range_deg": (-57.0, 61.0), "store": "none", "summary": {}})
    return path


def _predict(tmp_path: Path, tomo: Path, model: Path, **cfg) -> tuple[Path, Path]:
    out, out_zarr = tmp_path / "out" / "pred.mrc", tmp_path / "out" / "pred.zarr"
    predict_cryogen.run(tomogram_path=tomo, model_path=model, dataset=ROW,
                        cfg=PredictConfig(**{"tile_px": 32, "overlap_px": 8, "batch_size": 2, **cfg}), out=out,
                        out_zarr=out_zarr, device="cpu")
    return out, out_zarr


@pytest.mark.parametrize("keep_measured", [True, False])
def test_untrained_generator_gives_the_tomogram_back(tmp_path, tomogram, keep_measured):
    tomo, volume = tomogram
    out, out_zarr = _predict(tmp_path, tomo, _identity_model(tmp_path / "model.pt"), keep_measured=keep_measured)
    written = read_mrc(out)
    assert written.data.shape == volume.shape and written.voxel_size_angstrom == pytest.approx(10.0)
    np.testing.assert_allclose(written.data, volume, atol=1e-4, rtol=0)
    np.testing.assert_allclose(open_volume_zarr(out_zarr)[...], volume, atol=1e-4, rtol=0)
    record = read_stage_meta(meta_path_for(out))
    assert record["stage"] == "predict_cryogen" and record["method"] == "cryogen"
    assert record["config"]["keep_measured"] is keep_measured


def test_identity_holds_with_any_normalisation(tmp_path, tomogram):
    """Whole-volume normalisation is undone exactly: another (mean, std) gives the same volume back."""
    tomo, volume = tomogram
    out, _ = _predict(tmp_path, tomo, _identity_model(tmp_path / "model.pt", normalization=(-7.0, 0.25)))
    np.testing.assert_allclose(read_mrc(out).data, volume, atol=1e-4, rtol=0)


def test_tile_not_divisible_by_the_models_divisor(tmp_path, tomogram):
    tomo, _ = tomogram
    with pytest.raises(ValueError, match=r"predict\.tile_px \(18\) is not divisible by 4 .*use 16"):
        _predict(tmp_path, tomo, _identity_model(tmp_path / "model.pt"), tile_px=18)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("content", ["foreign_dict", "text", "checkpoint"])
def test_a_model_file_that_is_not_ours(tmp_path, tomogram, content):
    tomo, _ = tomogram
    path = tmp_path / "model.pt"
    if content == "foreign_dict":
        torch.save({"state_dict": build_generator(TINY).state_dict()}, path)
    elif content == "text":
        path.write_text("not a model\n")
    else:  # a training checkpoint passed instead of the model file
        save_checkpoint(path, {"config": {}, "step": 3, "generator": {}, "opt_g": {}})
    expected = f"{path} is not a cryo_pipeline generator file (written by train-cryogen)"
    with pytest.raises(ValueError, match=re.escape(expected)) as err:
        _predict(tmp_path, tomo, path)
    if content == "checkpoint":
        assert "training checkpoint" in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- train_cryogen -> predict_cryogen ----------------------------------------------------------
def _store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with SubtomoStoreWriter(path, n_cubes=6, cube_px=24, voxel_size_angstrom=10.0, tilt_min_deg=-57.0,
                            tilt_max_deg=61.0, source_tomogram="tomo.mrc",
                            normalization={"mean": 3.0, "std": 2.0}) as writer:
        for i in range(6):
            writer.write(i, 3.0 + 2.0 * rng.standard_normal((24, 24, 24)))
    return path


@pytest.mark.parametrize("method", ["cryogen", "isonet"])
def test_trained_model_file_carries_what_prediction_needs(tmp_path, tomogram, method):
    model = tmp_path / "model" / f"{method}.pt"
    train_cryogen.run(store=_store(tmp_path / "subtomos.zarr"), dataset=ROW, cfg=TINY, method=method,
                      out_model=model, out_losses=tmp_path / "model" / "losses.tsv",
                      checkpoint_dir=tmp_path / "checkpoints")
    state = torch.load(model, map_location="cpu", weights_only=False)
    assert state["kind"] == MODEL_KIND and state["method"] == method
    assert tuple(state["tilt_range_deg"]) == (-57.0, 61.0) and tuple(state["normalization"]) == (3.0, 2.0)
    record = json.loads(meta_path_for(model).read_text())
    assert record["stage"] == "train_cryogen" and record["method"] == method and record["processes"] == 1
    assert record["steps"] == 6 and record["resumed_from_step"] == 0
    tomo, volume = tomogram
    out, _ = _predict(tmp_path, tomo, model)
    predicted = read_mrc(out).data
    assert predicted.shape == volume.shape and np.isfinite(predicted).all()
    assert not np.allclose(predicted, volume, atol=1e-4)  # trained: no longer the identity


# --- one source of truth for the tilt range: the sheet row ---------------------------------------
def test_training_refuses_a_store_of_another_tilt_range(tmp_path):
    row = ROW.model_copy(update={"tilt_min_deg": -50.0})
    with pytest.raises(ValueError) as err:
        train_cryogen.run(store=_store(tmp_path / "subtomos.zarr"), dataset=row, cfg=TINY, method="isonet",
                          out_model=tmp_path / "m.pt", out_losses=tmp_path / "l.tsv",
                          checkpoint_dir=tmp_path / "checkpoints")
    message = str(err.value)
    assert "tilt range [-57, 61] deg" in message and "tilt_min_deg -50, tilt_max_deg 61" in message
    assert "rerun extract_subtomos" in message
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "checkpoints").exists()


def test_prediction_refuses_a_model_of_another_tilt_range(tmp_path, tomogram):
    tomo, _ = tomogram
    model = _identity_model(tmp_path / "model.pt")  # trained for [-57, 61]
    row = ROW.model_copy(update={"tilt_max_deg": 60.0})
    with pytest.raises(ValueError) as err:
        predict_cryogen.run(tomogram_path=tomo, model_path=model, dataset=row,
                            cfg=PredictConfig(tile_px=32, overlap_px=8, batch_size=2), out=tmp_path / "out" / "p.mrc",
                            out_zarr=tmp_path / "out" / "p.zarr", device="cpu")
    message = str(err.value)
    assert f"{model} was trained for the tilt range [-57, 61] deg" in message
    assert "tilt_min_deg -57, tilt_max_deg 60" in message and "retrain" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
