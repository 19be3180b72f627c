"""Data-parallel training on CPU (gloo): the collective helpers in two real processes,
and ``cryo-pipeline train-cryogen`` under ``torchrun --nproc_per_node 2``.

Soundness of the "different data" check: rank 0 draws exactly the batches a single
process would (same seed), and the parameters start identical (broadcast from rank 0).
If rank 1 drew the same batches, every averaged gradient would be (g + g)/2 = g exactly
and the 2-process run would reproduce the 1-process run bit for bit; it does not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter

TINY = dict(crop_px=16, base_channels=4, depth=2, batch_size=1, epochs=2, steps_per_epoch=3, disc_channels=4,
            learning_rate=1e-3, learning_rate_energy=1e-3)
ROW = {"dataset": "tiny", "kind": "tomogram", "source": "x.mrc", "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# each process: join the group with the package's own setup (env:// rendezvous, gloo), give
# a module rank-dependent parameters and gradients, then broadcast / average / gather
_WORKER = textwrap.dedent("""
    import sys, torch
    from cryo_pipeline.training.distributed import (average_gradients, broadcast_parameters, gather_objects,
                                                    setup_process_group, teardown_process_group)
    torch.set_num_threads(1)
    group = setup_process_group(use_cuda=False)
    torch.manual_seed(100 + group.rank)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    module[1].running_mean.fill_(float(group.rank + 1))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    broadcast_parameters(module, group)
    after_broadcast = {k: v.clone() for k, v in module.state_dict().items()}
    grads = {}
    for i, (name, p) in enumerate(module.named_parameters()):
        if name != "2.bias":  # one parameter without a gradient: left alone
            p.grad = torch.full_like(p, float(group.rank + 1)) * (i + 1) + torch.arange(p.numel()).view(p.shape)
            grads[name] = p.grad.clone()
    average_gradients(module, group)
    averaged = {n: (p.grad.clone() if p.grad is not None else None) for n, p in module.named_parameters()}
    gathered = gather_objects({"rank": group.rank, "x": [group.rank] * 3}, group)
    torch.save({"group": (group.rank, group.world_size, group.is_main), "before": before,
                "after_broadcast": after_broadcast, "grads": grads, "averaged": averaged, "gathered": gathered},
               sys.argv[1] + f"/rank{group.rank}.pt")
    teardown_process_group(group)
""")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torch processes: not in make test-fast
def test_broadcast_average_and_gather_across_two_processes(tmp_path):
    env = {**ENV, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)], env={**env, "RANK": str(r),
                                                                                    "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outputs = [p.communicate()[0] for p in procs]  # pytest-timeout ends a hang
    assert [p.returncode for p in procs] == [0, 0], outputs
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert r0["group"] == (0, 2, True) and r1["group"] == (1, 2, False)
    assert not torch.equal(r0["before"]["0.weight"], r1["before"]["0.weight"])  # they started different
    for key, value in r0["before"].items():  # rank 0's parameters and buffers everywhere
        assert torch.equal(r0["after_broadcast"][key], value), key
        assert torch.equal(r1["after_broadcast"][key], value), key
    for name, g0 in r0["grads"].items():  # both end with the mean of the two gradients
        assert not torch.equal(g0, r1["grads"][name])
        mean = (g0 + r1["grads"][name]) / 2
        torch.testing.assert_close(r0["averaged"][name], mean, rtol=0, atol=1e-6)
        assert torch.equal(r0["averaged"][name], r1["averaged"][name]), name
    assert r0["averaged"]["2.bias"] is None and r1["averaged"]["2.bias"] is None
    assert r0["gathered"] == r1["gathered"] == [{"rank": 0, "x": [0, 0, 0]}, {"rank": 1, "x": [1, 1, 1]}]


# --- torchrun -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "subtomos.zarr"
    rng = np.random.default_rng(0)
    with SubtomoStoreWriter(path, n_cubes=6, cube_px=24, voxel_size_angstrom=10.0, tilt_min_deg=-60.0,
                            tilt_max_deg=60.0, source_tomogram="tiny.mrc",
                            normalization={"mean": 0.0, "std": 1.0}) as writer:
        for i in range(6):
            writer.write(i, rng.standard_normal((24, 24, 24)))
    return path


def _train_args(store: Path, out: Path) -> list[str]:
    return ["-m", "cryo_pipeline.cli.main", "--threads", "1", "train-cryogen", "--store", str(store),
            "--dataset-json", json.dumps(ROW), "--config-json", json.dumps(TINY),
            "--out-model", str(out / "model.pt"), "--out-losses", str(out / "losses.tsv"),
            "--checkpoint-dir", str(out / "checkpoints")]


def _session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of the session ``session`` (torchrun started with ``start_new_session``)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, sid = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue  # ended while we looked
        if int(sid) == session and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _torchrun(store: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
            str(_free_port()), *_train_args(store, out)]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def two_processes(store, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ddp")
    return out, _run(_torchrun(store, out)).stderr


@pytest.fixture(scope="module")
def one_process(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    _run([sys.executable, *_train_args(store, out)])
    return out


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", map_location="cpu", weights_only=False)["generator"]


@pytest.mark.slow
def test_torchrun_two_processes_write_one_model(two_processes):
    out, log = two_processes
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "losses.tsv", "model.json", "model.pt"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.pt"]  # no temporary left by rank 1
    record = json.loads((out / "model.json").read_text())
    assert record["processes"] == 2 and record["rank"] == 0 and record["steps"] == 6
    assert log.count("6 steps (2 epochs x 3), batch 1, device cpu, 2 process(es)") == 2  # both ranks trained
    assert log.count("cryogen of tiny: 6 steps") == 1  # one stage record, by rank 0
    losses = pd.read_csv(out / "losses.tsv", sep="\t")
    assert losses["step"].tolist() == list(range(6))


@pytest.mark.slow
def test_torchrun_ranks_draw_different_data_and_average_gradients(two_processes, one_process):
    out, _ = two_processes
    ddp, single = (pd.read_csv(o / "losses.tsv", sep="\t") for o in (out, one_process))
    # step 0: same initial parameters (broadcast from rank 0) and rank 0's batch = the single run's batch
    for column in ("loss_energy", "loss_data", "loss_consistency"):
        assert ddp[column].iloc[0] == single[column].iloc[0], column
    # then the averaged gradients include rank 1's, which came from other batches
    a, b = _weights(out), _weights(one_process)
    largest = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert largest > 1e-5, f"2-process weights equal the 1-process ones (max difference {largest})"
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    streams = [s["generator_rng"] for s in state["rank_rng"]]
    assert len(streams) == 2 and not torch.equal(streams[0], streams[1])  # each rank's own sampling stream


@pytest.mark.slow
def test_torchrun_resumes_every_ranks_random_streams(store, two_processes, tmp_path):
    """Stopped (SIGTERM, as a batch scheduler does) in epoch 2 and restarted: bit-identical to the
    uninterrupted 2-process run, which needs rank 1's own sampling stream back, not rank 0's."""
    reference, _ = two_processes
    out = tmp_path / "run"
    checkpoint = out / "checkpoints" / "last.pt"
    with open(tmp_path / "stopped.log", "w") as log:
        proc = subprocess.Popen(_torchrun(store, out), stdout=log, stderr=subprocess.STDOUT, env=ENV,
                                start_new_session=True)
        try:
            while not checkpoint.exists():  # pytest-timeout ends a hang
                assert proc.poll() is None, (tmp_path / "stopped.log").read_text()
                time.sleep(0.002)
            proc.send_signal(signal.SIGTERM)  # torchrun forwards it to its workers
            proc.wait()
            while _session_processes(proc.pid):  # a surviving worker would finish its 3 remaining steps first
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode != 0, "training finished before it could be stopped"
    assert not (out / "model.pt").exists()
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["step"] == 3

    result = _run(_torchrun(store, out))
    assert result.stderr.count("at step 3") == 2  # both ranks resumed
    a, b = _weights(out), _weights(reference)
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"resumed 2-process weights differ from the uninterrupted run in {differing}"
    resumed, uninterrupted = (pd.read_csv(o / "losses.tsv", sep="\t") for o in (out, reference))
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), uninterrupted.drop(columns="seconds"))
