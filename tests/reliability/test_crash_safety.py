"""Crash safety: SIGKILL ``extract-subtomos``, ``train-cryogen``, ``fit-slab`` and ``stitch-slabs``,
rerun, and compare with an uninterrupted run.

Each stage runs as the ``cryo-pipeline`` subprocess a rule runs, on tiny inputs, with one
thread. Two kills hit the same output folder one after the other (kill, rerun, kill the
rerun), then a last rerun finishes: two faults, one recovery run, the harsher case for stale
temporary files and for training's resume from checkpoints written by different killed runs.

* Deterministic kill points (``test_sigkill_at_observed_progress_and_mid_commit...``), chosen from
  what the run has done, never from the clock, so each kill tests what it claims on a machine
  of any speed or load: the first when the test sees the stage's progress (``Stage.progress``:
  mid-write of the main output, after the first epoch checkpoint, mid-fit); the second inside
  the rerun right before it renames its main output (``kill_at_replace.py``: mid-commit, the
  outputs renamed before are final, the rest still temporaries).
* Random kill points (``test_sigkill_at_random_points...``, extra cases): seeded times drawn
  from a window of the uninterrupted run's wall time T ([0.3 T, 0.85 T]; [0.2 T, 0.55 T] for
  fit_slab). Where they land depends on the machine's speed, so what these cases assert holds
  wherever they land, also if the run finished before the kill.

After every kill:

* an output present under its final name is complete: it equals the reference output;
* anything else in the folder is a hidden temporary sibling ``.<final>.tmp-<pid>-<hex>``
  (``atomic_write_path``) — never a half-written file under a final name;
* the training checkpoint ``checkpoints/last.pt``, when present, loads and sits on an epoch
  boundary (it is written atomically), and the next run resumes from it.

After the last rerun every output equals the reference. "Equal" is bit-identical for the
computed content (all are deterministic on one CPU thread: fit_slab is seeded, training
resumes bit-identically, stitch and extraction are deterministic): voxel and chunk bytes,
tensors, tables; only what records the run itself is left out (MRC's "Created by mrcfile.py
<time>" label, JSON ``pid``/``time_utc``/``*_s`` timings, the loss table's ``seconds`` column,
training's ``resumed_from_step``, and the checkpoint's copies of Python's and NumPy's *global*
random states, which training never draws from and nothing seeds, so they differ between two
uninterrupted runs as well; the seeded torch and crop-generator states are compared). Every run
has its own fresh ``$TMPDIR`` inside the test's folder; a run that finishes leaves it empty and
creates nothing in its working folder but its outputs (leaks are looked for there only, never in
the shared system temp folder, where other processes on the machine create files).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import CnConfig, MaskConfig
from cryo_pipeline.io.mrc import write_mrc
from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter
from cryo_pipeline.stages import fit_slab, make_mask, plan_slabs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

N_KILLS = 2  # random kills per extra case (the deterministic case always has two)
KILL_WINDOW = (0.3, 0.85)  # fractions of the uninterrupted run's wall time; a kill need not land (machine speed)
KILL_WINDOWS = {"fit_slab": (0.2, 0.55)}  # fit_slab's start-up is a larger share of its run
KILL_AT_REPLACE = Path(__file__).resolve().parent / "kill_at_replace.py"
TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.(tmp|old)-\d+-[0-9a-f]{8}$")
VOLATILE_KEYS = {"pid", "time_utc", "resumed_from_step", "steps_per_second", "seconds"}
MRC_TIME = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

CN = CnConfig(width=16, n_hidden_layers=2, slab_px=4, halo_px=1, seed_iterations=5, slab_iterations=600,
              rows_per_step=2)
TRAIN = dict(crop_px=16, base_channels=4, depth=2, batch_size=1, disc_channels=4, learning_rate=1e-3,
             learning_rate_energy=1e-3, epochs=6, steps_per_epoch=3)
TOMO_ROW = {"dataset": "tomo", "kind": "tomogram", "source": "x.mrc", "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}


# --- inputs, built in-process once ----------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory, cn_tilt_series) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    torch.set_num_threads(1)
    # CN: a tilt series, its plan, the seed network and three slab tile stores
    truth = np.zeros((8, 12, 10), np.float32)
    truth[2:6, 2:10, 3:7] = 1.0
    row = cn_tilt_series(folder, truth, np.arange(-60, 60.01, 4.0))
    (folder / "cn_row.json").write_text(row.model_dump_json())
    plan = plan_slabs.run(tilt_series_path=folder / "ts.mrc", angles_path=folder / "ts.tlt", dataset=row, cfg=CN,
                          out=folder / "plan.json")
    fit_slab.run_seed(tilt_series_path=folder / "ts.mrc", plan_path=folder / "plan.json", dataset=row, cfg=CN,
                      out_model=folder / "seed.pt")
    quick = CN.model_copy(update={"slab_iterations": 2})
    for i in range(plan.n_slabs):
        fit_slab.run_slab(tilt_series_path=folder / "ts.mrc", plan_path=folder / "plan.json",
                          init_model=folder / "seed.pt", seed_meta=folder / "seed.json", slab=i, dataset=row,
                          cfg=quick, out_tiles=folder / "slabs" / f"slab_{i}.zarr",
                          out_model=folder / "slabs" / f"slab_{i}.pt")
    # a tomogram with dark blobs and its density mask
    rng = np.random.default_rng(0)
    shape = (40, 72, 68)
    z, y, x = np.indices(shape)
    volume = rng.standard_normal(shape).astype(np.float32) * 0.5 + 3.0
    for _ in range(25):
        c = [rng.uniform(6, s - 6) for s in shape]
        volume[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 25] -= 1.0
    write_mrc(folder / "tomo.mrc", volume, voxel_size_angstrom=7.5)
    make_mask.run(tomogram_path=folder / "tomo.mrc", dataset=DatasetRow.model_validate(TOMO_ROW), cfg=MaskConfig(),
                  out=folder / "mask.mrc")
    # a subtomogram store for training
    with SubtomoStoreWriter(folder / "subtomos.zarr", n_cubes=6, cube_px=24, voxel_size_angstrom=10.0,
                            tilt_min_deg=-60.0, tilt_max_deg=60.0, source_tomogram="tiny.mrc",
                            normalization={"mean": 0.5, "std": 2.0}) as writer:
        for i in range(6):
            writer.write(i, 0.5 + 2.0 * rng.standard_normal((24, 24, 24)))
    return folder


@dataclass(frozen=True)
class Run:
    """One launched ``cryo-pipeline`` process of a test: its working folder, own ``$TMPDIR`` and stderr log."""

    proc: subprocess.Popen
    work: Path
    tmpdir: Path
    log: Path

    def temporaries_of(self, output: str) -> list[Path]:
        """This process's hidden temporary siblings of ``output`` (``.<name>.tmp-<pid>-<hex>``)."""
        final = self.work / output
        return list(final.parent.glob(f".{final.name}.tmp-{self.proc.pid}-*"))


@dataclass(frozen=True)
class Stage:
    args: Callable[[Path], list[str]]  # the subcommand and its flags (outputs relative to the working folder)
    outputs: tuple[str, ...]  # final names, relative to the working folder
    # observed progress at which the first deterministic kill lands, and what it is, in words
    progress: Callable[[Run], bool]
    progress_means: str
    progress_leaves: str | None  # the output whose temporary that kill must leave behind (mid-write), if any
    # the output whose rename the second deterministic kill pre-empts (kill_at_replace.py): mid-commit
    commit: str
    checkpoint: str | None = None  # a checkpoint that legitimately exists mid-run (compared only at the end)


STAGES = {
    "extract_subtomos": Stage(
        lambda d: ["extract-subtomos", "--tomogram", str(d / "tomo.mrc"), "--mask", str(d / "mask.mrc"),
                   "--dataset-json", json.dumps(TOMO_ROW),
                   "--config-json", json.dumps({"cube_size_px": 16, "n_subtomos": 400}),
                   "--out-store", "subtomos.zarr", "--out-table", "subtomos.tsv"],
        ("subtomos.zarr", "subtomos.tsv", "subtomos.json"),
        progress=lambda run: bool(run.temporaries_of("subtomos.zarr")),
        progress_means="mid-write of subtomos.zarr (its temporary store exists)",
        progress_leaves="subtomos.zarr", commit="subtomos.zarr"),
    "train_cryogen": Stage(
        lambda d: ["train-cryogen", "--store", str(d / "subtomos.zarr"), "--dataset-json", json.dumps(TOMO_ROW),
                   "--config-json", json.dumps(TRAIN), "--out-model", "model.pt", "--out-losses", "losses.tsv",
                   "--checkpoint-dir", "checkpoints"],
        ("model.pt", "model.json", "losses.tsv", "checkpoints/last.pt"),
        progress=lambda run: (run.work / "checkpoints" / "last.pt").exists(),
        progress_means="after the first epoch checkpoint exists", progress_leaves=None, commit="losses.tsv",
        checkpoint="checkpoints/last.pt"),
    "fit_slab": Stage(
        lambda d: ["fit-slab", "--tilt-series", str(d / "ts.mrc"), "--dataset-json", (d / "cn_row.json").read_text(),
                   "--config-json", CN.model_dump_json(), "--plan", str(d / "plan.json"), "--slab", "1",
                   "--init-model", str(d / "seed.pt"), "--seed-meta", str(d / "seed.json"),
                   "--out-tiles", "slab_1.zarr", "--out-model", "slab_1.pt"],
        ("slab_1.zarr", "slab_1.pt", "slab_1.json"),
        progress=lambda run: "slab 1: step " in run.log.read_text(errors="replace"),
        progress_means="mid-fit (the fit logged its first step)", progress_leaves=None,
        commit="slab_1.zarr"),
    "stitch_slabs": Stage(
        lambda d: ["stitch-slabs", "--plan", str(d / "plan.json"), "--out", "cn.mrc", "--out-zarr", "cn.zarr",
                   "--config-json", json.dumps({"chunk_px": 8})],
        ("cn.zarr", "cn.mrc", "cn.json"),
        progress=lambda run: bool(run.temporaries_of("cn.zarr")),
        progress_means="mid-stitch (the temporary cn.zarr exists)", progress_leaves="cn.zarr",
        commit="cn.zarr"),
}
SEEDS = {"extract_subtomos": 11, "train_cryogen": 12, "fit_slab": 13, "stitch_slabs": 14}


# --- comparing outputs without what records the run itself ------------------------------------------
def _strip(value):
    """Plain, comparable form of a loaded JSON/torch value, without run-specific entries."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in VOLATILE_KEYS or (isinstance(key, str) and re.search(r"_s(_per_group)?$", key)):
                continue
            if key == "rng" and isinstance(item, dict):  # unseeded global states, saved but never drawn from
                item = {k: v for k, v in item.items() if k not in ("python", "numpy")}
            if key == "history":  # training's loss history: drop each row's wall time (last column)
                item = [tuple(row)[:-1] for row in item]
            out[key] = _strip(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        return ("tensor", str(value.dtype), tuple(value.shape), value.reshape(-1).view(torch.uint8).numpy().tobytes())
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.shape, value.tobytes())
    return value


def _canonical(path: Path):
    """What must be identical between two runs' ``path`` (file or Zarr folder)."""
    if path.is_dir():
        return {str(p.relative_to(path)): _canonical(p) for p in sorted(path.rglob("*")) if p.is_file()}
    if path.suffix == ".json":
        return _strip(json.loads(path.read_text()))
    if path.suffix == ".pt":
        return _strip(torch.load(path, map_location="cpu", weights_only=False))
    if path.name == "losses.tsv":
        return pd.read_csv(path, sep="\t").drop(columns=["seconds"]).to_csv(sep="\t", index=False)
    data = path.read_bytes()
    if path.suffix == ".mrc":  # mrcfile's label "Created by mrcfile.py <time>"
        head = MRC_TIME.sub(b"0000-00-00 00:00:00", data[:1024])
        return head + data[1024:]
    return data


def _entries(folder: Path) -> list[str]:
    """Top-level names in ``folder`` and in its ``checkpoints/``, relative to ``folder``."""
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    if (folder / "checkpoints").is_dir():
        names += [f"checkpoints/{p.name}" for p in (folder / "checkpoints").iterdir()]
    return sorted(n for n in names if n != "checkpoints")


def _stale_temporaries(work: Path, stage: Stage) -> list[str]:
    """Entries that are not final outputs; fails unless each is a hidden temporary sibling of one."""
    stale = []
    for name in _entries(work):
        if name in stage.outputs:
            continue
        folder, _, base = name.rpartition("/")
        while match := TEMP_NAME.match(base):  # a writer may nest its own temporary inside the stage's
            base = match["final"]
        final = f"{folder}/{base}" if folder else base
        assert final in stage.outputs and final != name, \
            f"{name} in {work} is neither an output nor a temporary sibling of one"
        stale.append(name)
    return stale


def _launch(stage: Stage, inputs: Path, work: Path, tmpdir: Path, log: Path, *, kill_at_replace: str | None = None
            ) -> Run:
    """Start the stage in ``work`` with its own empty ``$TMPDIR``; ``kill_at_replace``: see kill_at_replace.py."""
    work.mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    entry = ["-m", "cryo_pipeline.cli.main"] if kill_at_replace is None else [str(KILL_AT_REPLACE), kill_at_replace]
    command = [sys.executable, *entry, "--threads", "1", *stage.args(inputs)]
    with open(log, "w") as handle:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=handle,
                                start_new_session=True)
    return Run(proc, work, tmpdir, log)


def _end(run: Run) -> int:
    """Wait for the process (no time limit: pytest-timeout catches a hang), then SIGKILL anything it left
    running in its session (Dask worker processes of a killed stitch); its exit status."""
    code = run.proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.proc.pid, signal.SIGKILL)
    return code


def _finish(run: Run) -> None:
    assert _end(run) == 0, run.log.read_text()[-3000:]


def _kill_when(run: Run, event: Callable[[Run], bool], means: str) -> None:
    """SIGKILL the process as soon as ``event(run)`` is seen (polled every ms); fails if it ends first."""
    while not event(run):
        assert run.proc.poll() is None, f"the run ended (exit {run.proc.returncode}) before the kill point " \
            f"({means}) was seen:\n{run.log.read_text()[-3000:]}"
        time.sleep(0.001)
    run.proc.send_signal(signal.SIGKILL)
    assert _end(run) == -signal.SIGKILL, f"the kill {means} did not land"


def _check_after_kill(stage: Stage, work: Path, expected: dict, when: str) -> tuple[list[str], list[str]]:
    """What a kill left: each final output complete (= the reference), the checkpoint on an epoch boundary,
    everything else a hidden temporary sibling of an output. Returns (final outputs present, temporaries)."""
    present = []
    for out in stage.outputs:
        if not (work / out).exists():
            continue
        present.append(out)
        if out == stage.checkpoint:  # mid-run checkpoint: complete and on an epoch boundary
            state = torch.load(work / out, map_location="cpu", weights_only=False)
            assert state["step"] % TRAIN["steps_per_epoch"] == 0 and len(state["history"]) == state["step"]
        else:
            assert _canonical(work / out) == expected[out], f"{out} differs after the kill {when}"
    return present, _stale_temporaries(work, stage)


def _checkpoint_step(work: Path, stage: Stage) -> int | None:
    if stage.checkpoint is None or not (work / stage.checkpoint).exists():
        return None
    return int(torch.load(work / stage.checkpoint, map_location="cpu", weights_only=False)["step"])


def _resumed_at(log: Path) -> int | None:
    found = re.search(r"resuming cryogen training from \S+last\.pt at step (\d+)", log.read_text())
    return int(found[1]) if found else None


@pytest.fixture(scope="module")
def references(inputs, tmp_path_factory) -> Callable[[str], dict]:
    """The uninterrupted run of a stage (run once per module): its canonical outputs and wall time."""
    done: dict[str, dict] = {}

    def reference(name: str) -> dict:
        if name not in done:
            stage, folder = STAGES[name], tmp_path_factory.mktemp(f"reference_{name}")
            started = time.perf_counter()
            run = _launch(stage, inputs, folder / "work", folder / "tmpdir", folder / "reference.log")
            _finish(run)
            duration = time.perf_counter() - started
            assert _entries(run.work) == sorted(stage.outputs)  # nothing else, no temp folder in the working folder
            assert not any(run.tmpdir.iterdir()), list(run.tmpdir.rglob("*"))  # its own $TMPDIR left empty
            done[name] = {"outputs": {out: _canonical(run.work / out) for out in stage.outputs},
                          "seconds": duration}
        return done[name]

    return reference


def _rerun_reproduces(stage: Stage, inputs: Path, work: Path, tmp_path: Path, expected: dict) -> tuple[Run, list]:
    """The last run finishes, reproduces the reference and leaves its own ``$TMPDIR`` empty."""
    rerun = _launch(stage, inputs, work, tmp_path / "tmpdirs" / "rerun", tmp_path / "logs" / "rerun.log")
    _finish(rerun)
    identical = [out for out in stage.outputs if _canonical(work / out) == expected[out]]
    assert identical == list(stage.outputs), f"outputs differing from the uninterrupted run: " \
        f"{sorted(set(stage.outputs) - set(identical))}"
    assert not any(rerun.tmpdir.iterdir()), list(rerun.tmpdir.rglob("*"))
    return rerun, _stale_temporaries(work, stage)


@pytest.mark.parametrize("name", list(STAGES))
def test_sigkill_at_observed_progress_and_mid_commit_then_rerun_gives_the_uninterrupted_outputs(
        name, inputs, references, tmp_path):
    """Two kills at points chosen from what the run has done, not from the clock, in one folder:
    1. at the stage's observed progress (``Stage.progress``): mid-write of the main output, after the first
       epoch checkpoint, mid-fit; nothing may be final yet;
    2. the rerun, killed right before it renames its main output (``Stage.commit``): the outputs renamed
       before it are final and complete, the main one is still a hidden temporary.
    Then a last run finishes and equals the uninterrupted run; training resumed from its checkpoints."""
    stage, expected = STAGES[name], references(name)["outputs"]
    work, logs = tmp_path / "work", tmp_path / "logs"
    logs.mkdir()

    first = _launch(stage, inputs, work, tmp_path / "tmpdirs" / "killed_0", logs / "killed_0.log")
    _kill_when(first, stage.progress, stage.progress_means)
    present, _ = _check_after_kill(stage, work, expected, stage.progress_means)
    assert set(present) <= {stage.checkpoint}, f"final outputs {present} exist after a kill {stage.progress_means}"
    if stage.checkpoint:
        assert present == [stage.checkpoint], "the first kill landed before the checkpoint it waited for"
    if stage.progress_leaves:
        assert first.temporaries_of(stage.progress_leaves), f"no temporary of {stage.progress_leaves}: {_entries(work)}"
    step_after_first = _checkpoint_step(work, stage)

    second = _launch(stage, inputs, work, tmp_path / "tmpdirs" / "killed_1", logs / "killed_1.log",
                     kill_at_replace=stage.commit)
    assert _end(second) == -signal.SIGKILL, f"the run never renamed {stage.commit}:\n{second.log.read_text()[-3000:]}"
    present, _ = _check_after_kill(stage, work, expected, f"before renaming {stage.commit}")
    assert stage.commit not in present and second.temporaries_of(stage.commit), \
        f"{stage.commit} should still be a complete temporary: {_entries(work)}"
    committed_before = stage.outputs[stage.outputs.index(stage.commit) + 1:] if stage.checkpoint is None \
        else ("model.pt", stage.checkpoint)  # stage_outputs renames the last output first; training: model first
    assert set(committed_before) <= set(present), (committed_before, present)
    if stage.checkpoint:  # the second run resumed from the first one's checkpoint, the last one from its own
        assert _resumed_at(second.log) == step_after_first, second.log.read_text()[-3000:]

    rerun, stale = _rerun_reproduces(stage, inputs, work, tmp_path, expected)
    if stage.checkpoint:
        assert _resumed_at(rerun.log) == TRAIN["epochs"] * TRAIN["steps_per_epoch"], rerun.log.read_text()[-3000:]
    print(f"\nFAULTS {name:17s} kills {stage.progress_means}, then before renaming {stage.commit}: recovered, "
          f"identical (stale hidden temps {len(stale)})")


@pytest.mark.parametrize("name", list(STAGES))
def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_outputs(name, inputs, references, tmp_path,
                                                                            request):
    """Extra cases: kills at seeded random times in [a, b] x the uninterrupted run's wall time, one after the
    other in one folder. What is asserted holds wherever a kill lands (or if the run finished first)."""
    stage, reference = STAGES[name], references(name)
    expected, duration = reference["outputs"], reference["seconds"]
    work, logs = tmp_path / "work", tmp_path / "logs"
    logs.mkdir()
    window = KILL_WINDOWS.get(name, KILL_WINDOW)
    kill_at = np.sort(np.random.default_rng(SEEDS[name]).uniform(*window, N_KILLS)) * duration
    injected, complete_after_kill = 0, 0
    for i, delay in enumerate(kill_at):
        run = _launch(stage, inputs, work, tmp_path / "tmpdirs" / f"killed_{i}", logs / f"killed_{i}.log")
        try:
            run.proc.wait(timeout=float(delay))
        except subprocess.TimeoutExpired:
            run.proc.send_signal(signal.SIGKILL)
        code = _end(run)
        if code == -signal.SIGKILL:
            injected += 1
        else:
            assert code == 0, run.log.read_text()[-3000:]
        present, _ = _check_after_kill(stage, work, expected, f"at {delay:.2f} s")
        complete_after_kill += len(set(present) - {stage.checkpoint})

    step_before_rerun = _checkpoint_step(work, stage)
    rerun, stale = _rerun_reproduces(stage, inputs, work, tmp_path, expected)
    if step_before_rerun is not None:  # a kill left a checkpoint: the last run resumed from it
        assert _resumed_at(rerun.log) == step_before_rerun, rerun.log.read_text()[-3000:]

    row = {"stage": name, "uninterrupted_s": round(duration, 2), "kill_at_s": [round(float(t), 2) for t in kill_at],
           "faults_injected": injected, "recovered": injected, "identical_outputs": injected,
           "complete_outputs_seen_after_kills": complete_after_kill, "stale_hidden_temporaries": len(stale)}
    request.node.user_properties.append(("fault_table", row))
    print(f"\nFAULTS {name:17s} injected {injected}  recovered {injected}  identical {injected}  "
          f"(T={duration:.1f} s, kills at {row['kill_at_s']} s, stale hidden temps {len(stale)})")
