"""The training loop on its own: pure (no file I/O), resumable from the state it hands out."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.io.tables import LOSS_COLUMNS
from cryo_pipeline.training.data import SubtomoBatches
from cryo_pipeline.training.distributed import relaunch_on_every_gpu
from cryo_pipeline.training.loop import checkpoint_config, train_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = TrainConfig(crop_px=16, base_channels=4, depth=2, batch_size=1, disc_channels=4, epochs=2, steps_per_epoch=2,
                  learning_rate=1e-3, learning_rate_energy=1e-3)


def _batches() -> SubtomoBatches:
    cubes = 0.5 + 2.0 * np.random.default_rng(0).standard_normal((4, 20, 20, 20)).astype(np.float32)
    return SubtomoBatches(cubes, normalization=(0.5, 2.0), crop_px=16)


def test_the_loop_writes_nothing_and_hands_out_every_epochs_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    states = []
    result = train_generator(_batches(), cfg=CFG, method="cryogen", tilt_range_deg=(-60.0, 60.0),
                             device=torch.device("cpu"),
                             save_checkpoint=lambda state: states.append(copy.deepcopy(state)))
    assert not os.listdir(tmp_path)  # no file written anywhere it runs
    assert [s["step"] for s in states] == [2, 4] and states[0]["config"] == checkpoint_config(CFG, "cryogen")
    assert len(result.history) == 4 and all(len(row) == len(LOSS_COLUMNS) for row in result.history)
    assert [row[0] for row in result.history] == [0, 1, 2, 3]
    assert result.summary["steps"] == 4 and result.summary["resumed_from_step"] == 0
    # resuming from the first epoch's state reproduces the uninterrupted run exactly
    resumed = train_generator(_batches(), cfg=CFG, method="cryogen", tilt_range_deg=(-60.0, 60.0),
                              device=torch.device("cpu"), resume=states[0], checkpoint_label="epoch-1")
    assert resumed.summary["resumed_from_step"] == 2
    assert [row[:8] for row in resumed.history] == [row[:8] for row in result.history]
    assert all(torch.equal(resumed.generator[k], result.generator[k]) for k in result.generator)


def test_batches_refuse_crops_larger_than_the_cubes_and_empty_stores():
    cubes = np.zeros((2, 12, 12, 12), np.float32)
    with pytest.raises(ValueError, match=r"train\.crop_px \(16\) is larger than the stored cubes \(12\) in s\.zarr"):
        SubtomoBatches(cubes, normalization=(0.0, 1.0), crop_px=16, source="s.zarr")
    with pytest.raises(ValueError, match="s.zarr has no training cubes"):
        SubtomoBatches(cubes[:0], normalization=(0.0, 1.0), crop_px=8, source="s.zarr")


def test_no_relaunch_without_several_gpus():
    # this machine has no GPU; with device cpu the command never relaunches, whatever is visible
    assert relaunch_on_every_gpu(["train-cryogen", "--store", "x"], device="cpu") is False
    if not torch.cuda.is_available():
        assert relaunch_on_every_gpu(["train-cryogen"], device="auto") is False
