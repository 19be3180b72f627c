"""What a change reruns: Snakemake's own dry run after a finished tiny run (issue 17's acceptance).

Each rule's params hold only the sheet columns and config keys its stage reads, and the
``execution:`` section reaches no params, so after a finished run

(a) adding a method to a row schedules only that method's jobs plus evaluate/collect_metrics/report,
(b) editing a column no existing job reads schedules at most collect_metrics/report,
(c) changing ``execution`` (device, Dask workers) schedules nothing,
(d) changing ``train.steps_per_epoch`` reruns training, prediction and their downstream for the
    dataset that trains, and nothing else.

The dry runs use every rerun trigger Snakemake has (the default: mtime, params, input, code,
software-env). Each test restores the files it edits, with the sheet's modification time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from .conftest import run_snakemake

pytestmark = pytest.mark.workflow

HEADER = ("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
          "\tmethods\tseed\tshape_px")
ROWS = {
    "sphere_fourier": "sphere_fourier\tsynthetic\thollow_sphere\t8.0\t-60\t60\t2\tfourier\t\tisonet\t0\t32",
    "shapes.ts": "shapes.ts\tsynthetic\tmixed_shapes\t8.0\t-50\t65\t3\ttiltseries\t20\twbp\t1\t24x32x32",
}
SHRINK = {  # each job takes seconds
    "extract": {"cube_size_px": 16, "n_subtomos": 6, "min_mask_fraction": 0.0},
    "train": {"crop_px": 16, "base_channels": 4, "depth": 2, "disc_channels": 4, "batch_size": 1, "epochs": 2,
              "steps_per_epoch": 3},
    "predict": {"tile_px": 32, "overlap_px": 8, "batch_size": 2},
    "evaluate": {"windowed_ssim": False},
}
ENDS = {"collect_metrics", "report", "all"}


def _sheet(rows: dict[str, str]) -> str:
    return "\n".join([HEADER, *rows.values()]) + "\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny run done to the end: a Fourier-wedged sphere with isonet, a tilt series with wbp."""
    from .conftest import REPO

    workdir = tmp_path_factory.mktemp("rerun_scope")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = "tiny"
    for section, values in SHRINK.items():
        config[section].update(values)
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "config" / "datasets.tsv").write_text(_sheet(ROWS))
    done = run_snakemake(workdir, "--cores", "2", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    again = run_snakemake(workdir, "-n", "--cores", "1")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    return workdir


def _planned_jobs(workdir: Path) -> set[tuple[str, str, str]]:
    """``(rule, dataset, method)`` of every job a dry run plans ('' where a wildcard is absent)."""
    result = run_snakemake(workdir, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", result.stdout):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not head:
            continue
        found = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        wildcards = dict(part.split("=", 1) for part in found.group(1).split(", ")) if found else {}
        jobs.add((head.group(1), wildcards.get("dataset", ""), wildcards.get("method", "")))
    return jobs


@contextmanager
def _edited(path: Path, text: str) -> Iterator[None]:
    """``path`` holds ``text`` inside the block; afterwards its old content and modification time."""
    old, stat = path.read_bytes(), path.stat()
    path.write_text(text)
    try:
        yield
    finally:
        path.write_bytes(old)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _config_with(workdir: Path, section: str, **values) -> str:
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config[section].update(values)
    return yaml.safe_dump(config, sort_keys=False)


@pytest.mark.slow
def test_adding_a_method_runs_only_its_jobs(finished):
    rows = {"sphere_fourier": ROWS["sphere_fourier"].replace("\tisonet\t", "\tisonet,cryogen\t"),
            "shapes.ts": ROWS["shapes.ts"].replace("\twbp\t", "\twbp,cn\t")}
    with _edited(finished / "config" / "datasets.tsv", _sheet(rows)):
        jobs = _planned_jobs(finished)
    new = {("train_cryogen", "sphere_fourier", "cryogen"), ("predict_cryogen", "sphere_fourier", "cryogen"),
           ("evaluate", "sphere_fourier", "cryogen"), ("plan_slabs", "shapes.ts", ""),
           ("evaluate", "shapes.ts", "cn")}
    assert new <= jobs, jobs
    cn_rules = {"plan_slabs", "fit_slab_seed", "fit_slab", "stitch_slabs"}  # the slabs appear once planned
    others = {job for job in jobs - new if job[0] not in ENDS and not (job[0] in cn_rules and job[1] == "shapes.ts")}
    assert not others, f"adding a method reran existing jobs: {sorted(others)}"
    assert {job[0] for job in jobs} >= {"collect_metrics", "report"}


@pytest.mark.slow
def test_editing_a_column_no_job_reads_reruns_at_most_the_tables_and_report(finished):
    rows = {"sphere_fourier": ROWS["sphere_fourier"].replace("\tfourier\t\t", "\tfourier\t5\t"),  # snr: no projection
            "shapes.ts": ROWS["shapes.ts"]}
    sheet = _sheet(rows).replace("\tshape_px\n", "\tshape_px\tamplitude_contrast\n")  # no CTF: nothing reads it
    sheet = "\n".join(line + "\t0.1" if line and not line.startswith("dataset") else line
                      for line in sheet.split("\n"))
    with _edited(finished / "config" / "datasets.tsv", sheet):
        jobs = _planned_jobs(finished)
    assert {job[0] for job in jobs} <= ENDS, sorted(jobs)


@pytest.mark.slow
def test_changing_the_execution_section_reruns_nothing(finished):
    text = _config_with(finished, "execution", device="cpu", stitch_slurm_workers=3,
                        stitch_scheduler_address="tcp://127.0.0.1:8786")
    with _edited(finished / "config" / "config.yaml", text):
        result = run_snakemake(finished, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


@pytest.mark.slow
def test_changing_steps_per_epoch_reruns_training_and_its_downstream_only(finished):
    with _edited(finished / "config" / "config.yaml", _config_with(finished, "train", steps_per_epoch=4)):
        jobs = _planned_jobs(finished)
    assert jobs == {("train_cryogen", "sphere_fourier", "isonet"), ("predict_cryogen", "sphere_fourier", "isonet"),
                    ("evaluate", "sphere_fourier", "isonet"), ("collect_metrics", "", ""), ("report", "", ""),
                    ("all", "", "")}, sorted(jobs)
