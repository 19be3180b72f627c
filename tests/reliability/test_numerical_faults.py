"""Numerical faults through the CLI: a diverging GAN (learning rate at its allowed maximum)
and a CN slab fit started from corrupted (NaN) weights stop with exit status 2 and one
``error:`` line naming the step and the last good checkpoint; nothing is written under a
final output name."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cryo_pipeline.config.stages import CnConfig
from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter
from cryo_pipeline.stages import fit_slab, plan_slabs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROW = {"dataset": "tiny", "kind": "tomogram", "source": "x.mrc", "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}
# lr at the allowed maximum, no normalisation, no warm-up: the consistency loss is infinite at
# step 2 (seeded; the same set-up as tests/training/test_checkpoint_resume.py)
DIVERGING = dict(crop_px=16, base_channels=4, depth=2, batch_size=1, disc_channels=4, learning_rate=1.0,
                 learning_rate_energy=1.0, norm="none", warmup_fraction=0.0, epochs=3,
                 steps_per_epoch=2)
CN = CnConfig(width=16, n_hidden_layers=2, slab_px=4, halo_px=1, seed_iterations=3, slab_iterations=3,
              rows_per_step=2)


def _cli(*args: str, cwd: Path) -> str:
    """Run ``cryo-pipeline``; return its one ``error:`` line (exit 2, no traceback)."""
    result = subprocess.run([sys.executable, "-m", "cryo_pipeline.cli.main", "--threads", "1", *args], cwd=cwd,
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr[-3000:]
    return errors[0]


@pytest.mark.slow  # runs the CLI / training in subprocesses: not in make test-fast
def test_diverging_gan_stops_naming_the_step_and_the_last_good_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    with SubtomoStoreWriter(tmp_path / "s.zarr", n_cubes=4, cube_px=24, voxel_size_angstrom=10.0, tilt_min_deg=-60.0,
                            tilt_max_deg=60.0, source_tomogram="t.mrc",
                            normalization={"mean": 0.5, "std": 2.0}) as writer:
        for i in range(4):
            writer.write(i, 0.5 + 2.0 * rng.standard_normal((24, 24, 24)))
    line = _cli("train-cryogen", "--store", str(tmp_path / "s.zarr"), "--dataset-json", json.dumps(ROW),
                "--config-json", json.dumps(DIVERGING), "--out-model", "out/model.pt", "--out-losses",
                "out/losses.tsv", "--checkpoint-dir", "out/checkpoints", cwd=tmp_path)
    assert re.search(r"training diverged at step 2: non-finite loss \{'consistency': (inf|nan)\}", line), line
    assert "last good checkpoint: out/checkpoints/last.pt" in line and "train.learning_rate" in line, line
    state = torch.load(tmp_path / "out/checkpoints/last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2 and all(bool(torch.isfinite(v).all()) for v in state["generator"].values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoints"]  # no model, no loss table


@pytest.mark.slow  # runs the CLI / training in subprocesses: not in make test-fast
def test_cn_slab_from_corrupted_weights_stops_naming_the_step_and_the_weights(cn_tilt_series, tmp_path):
    truth = np.zeros((8, 8, 10), np.float32)
    truth[2:6, 2:6, 3:7] = 1.0
    row = cn_tilt_series(tmp_path, truth, np.arange(-60, 60.01, 6.0), dataset="cn.nan")
    plan_slabs.run(tilt_series_path=tmp_path / "ts.mrc", angles_path=tmp_path / "ts.tlt", dataset=row, cfg=CN,
                   out=tmp_path / "plan.json")
    fit_slab.run_seed(tilt_series_path=tmp_path / "ts.mrc", plan_path=tmp_path / "plan.json", dataset=row, cfg=CN,
                      out_model=tmp_path / "seed.pt")
    state = torch.load(tmp_path / "seed.pt", weights_only=True)
    first = next(iter(state["state_dict"]))
    state["state_dict"][first].fill_(float("nan"))  # a numerical fault in the weights a slab starts from
    torch.save(state, tmp_path / "bad.pt")
    line = _cli("fit-slab", "--tilt-series", "ts.mrc", "--dataset-json", row.model_dump_json(),
                "--config-json", CN.model_dump_json(), "--plan", "plan.json", "--slab", "0", "--init-model", "bad.pt",
                "--out-tiles", "out/slab_0.zarr", "--out-model", "out/slab_0.pt", cwd=tmp_path)
    assert "fit_slab 0 of cn.nan diverged: slab 0: the loss became nan at step 0" in line, line
    assert "cn.slab_lr_start" in line and "last good weights: the initial ones, bad.pt" in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
