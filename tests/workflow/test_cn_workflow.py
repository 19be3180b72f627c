"""CN in Snakemake: the plan_slabs checkpoint, ⌈H/t⌉ independent fit_slab jobs, a killed slab reruns alone."""

import contextlib
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, SNAKEMAKE, run_snakemake

pytestmark = pytest.mark.workflow

HEIGHT, SLAB, HALO = 32, 8, 2
SHEET = (
    "dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr\tmethods"
    f"\tseed\tshape_px\nshapes.ts\tsynthetic\tmixed_shapes\t8.0\t-60\t60\t3\ttiltseries\t20\twbp,cn\t1\t24x{HEIGHT}x32\n"
)
PLAN = "results/tiny/shapes.ts/cn/slabs.json"


@pytest.fixture
def cn_workdir(tiny_workdir: Path) -> Path:
    """The tiny workflow with one tilt-series dataset (wbp, cn) and a CN shrunk to seconds."""
    (tiny_workdir / "config" / "datasets.tsv").write_text(SHEET)
    path = tiny_workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["cn"].update(width=16, n_hidden_layers=2, slab_px=SLAB, halo_px=HALO, seed_iterations=5,
                        slab_iterations=3, rows_per_step=4)
    path.write_text(yaml.safe_dump(config))
    return tiny_workdir


def _dag_edges(dot: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    labels = {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M)}
    edges = {(m.group(1), m.group(2)) for m in re.finditer(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}
    return labels, edges


def test_slurm_dry_run_schedules_ceil_h_over_t_slabs_that_depend_only_on_the_seed(cn_workdir):
    # the checkpoint runs first (it reads the tilt series); then the whole DAG is known
    done = run_snakemake(cn_workdir, "--cores", "2", PLAN)
    assert done.returncode == 0, done.stderr[-3000:]
    dry = run_snakemake(cn_workdir, "-n", "--profile", "profiles/slurm")
    assert dry.returncode == 0, dry.stderr[-3000:]
    table = dry.stdout.split("Job stats:")[1].split("total")[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    n_slabs = math.ceil(HEIGHT / SLAB)
    assert counts["fit_slab"] == n_slabs and counts["fit_slab_seed"] == 1 and counts["stitch_slabs"] == 1
    dag = run_snakemake(cn_workdir, "--dag", "--profile", "profiles/slurm")
    labels, edges = _dag_edges(dag.stdout)
    slabs = {node for node, label in labels.items() if label.startswith("fit_slab\\n")}
    assert len(slabs) == n_slabs
    (seed,) = [node for node, label in labels.items() if label.startswith("fit_slab_seed")]
    for node in slabs:
        parents = {labels[a].split("\\n")[0] for a, b in edges if b == node}
        assert "fit_slab" not in parents, f"{labels[node]} depends on another slab: {parents}"
        assert (seed, node) in edges
    (stitch,) = [node for node, label in labels.items() if label.startswith("stitch_slabs")]
    (plan,) = [node for node, label in labels.items() if label.startswith("plan_slabs")]
    assert {a for a, b in edges if b == stitch} == slabs | {plan}


def test_chain_schedule_links_each_slab_to_its_neighbour_towards_the_seed(cn_workdir):
    path = cn_workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["cn"]["schedule"] = "chain"
    path.write_text(yaml.safe_dump(config))
    assert run_snakemake(cn_workdir, "--cores", "2", PLAN).returncode == 0
    labels, edges = _dag_edges(run_snakemake(cn_workdir, "--dag").stdout)
    slab_of = {node: int(label.split("slab: ")[1].split("\\n")[0]) for node, label in labels.items()
               if label.startswith("fit_slab\\n")}
    parents = {slab_of[b]: slab_of[a] for a, b in edges if a in slab_of and b in slab_of}
    assert parents == {0: 1, 1: 2, 3: 2}  # 4 slabs, seed slab 2: 1 <- 2 -> 3, 0 <- 1


def _running_unfinished_fit_slabs(session: int, slabs: Path) -> list[int]:
    """PIDs of this session's ``cryo-pipeline fit-slab`` processes whose slab has no record yet."""
    found = subprocess.run(["pgrep", "-s", str(session), "-f", "cryo-pipeline.* fit-slab "], capture_output=True,
                           text=True).stdout.split()
    victims = []
    for pid in map(int, found):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            slab = int(argv[argv.index(b"--slab") + 1]) if b"--slab" in argv else None
            if slab is not None and not (slabs / f"slab_{slab}.json").exists():
                victims.append(pid)
    return victims


@pytest.mark.slow
def test_a_killed_fit_slab_reruns_alone(cn_workdir):
    config = yaml.safe_load((cn_workdir / "config" / "config.yaml").read_text())
    config["cn"]["slab_iterations"] = 4000  # long enough to be killed mid-fit
    (cn_workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    assert run_snakemake(cn_workdir, "--cores", "2", PLAN).returncode == 0
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(cn_workdir), "--cores", "1",
               "results/tiny/shapes.ts/cn/volume.mrc"]
    runner = subprocess.Popen(command, cwd=cn_workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    slabs = cn_workdir / "results" / "tiny" / "shapes.ts" / "cn" / "slabs"
    try:
        # once one slab is done, SIGKILL a fit-slab process of an unfinished slab (as the OOM killer would);
        # events only (a slab's record, a running process): pytest-timeout ends a hang
        victims: list[int] = []
        while not victims:
            assert runner.poll() is None, "no fit-slab ran after a finished one"
            time.sleep(0.5)
            if list(slabs.glob("slab_*.json")):
                victims = _running_unfinished_fit_slabs(runner.pid, slabs)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert runner.wait() != 0  # Snakemake reports the failed job and stops
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    finished = sorted(p.name for p in slabs.glob("slab_*.json"))
    stamps = {name: (slabs / name).stat().st_mtime_ns for name in finished}
    assert 1 <= len(finished) < math.ceil(HEIGHT / SLAB)
    for store in slabs.glob("slab_*.zarr"):  # nothing half-written under a final name
        assert (slabs / store.name.replace(".zarr", ".json")).exists(), f"{store} without its record"
    config["cn"]["slab_iterations"] = 3
    (cn_workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    # the config change would rerun every slab (params changed): rerun with the trigger limited to missing outputs
    rerun = run_snakemake(cn_workdir, "--cores", "2", "--rerun-triggers", "mtime", "--rerun-incomplete",
                          "results/tiny/shapes.ts/cn/volume.mrc")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    table = (rerun.stdout + rerun.stderr).split("Job stats:")[1].split("total")[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    assert counts.get("fit_slab_seed", 0) == 0
    assert counts["fit_slab"] == math.ceil(HEIGHT / SLAB) - len(finished)
    assert {name: (slabs / name).stat().st_mtime_ns for name in finished} == stamps  # finished slabs untouched


def test_slab_px_null_on_the_demo_volume_runs_one_network(tiny_workdir):
    """Regression (issue 14): the paper's ratio asks for one 64-row slab of the 48 x 64 x 64 demo volume; with
    halo_px 4 plan_slabs used to fail (72 > 64 rows). Now: one network, no halo, written without blending, scored
    with the CN paper's metric too."""
    (tiny_workdir / "config" / "datasets.tsv").write_text(SHEET.replace(f"24x{HEIGHT}x32", "48x64x64"))
    path = tiny_workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["cn"]["width"] == 128  # the demo's network
    config["cn"].update(slab_px=None, halo_px=4, seed_iterations=3, slab_iterations=2, rows_per_step=2)
    path.write_text(yaml.safe_dump(config))
    metrics = "results/tiny/shapes.ts/cn/metrics.tsv"
    done = run_snakemake(tiny_workdir, "--cores", "2", metrics, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    plan = yaml.safe_load((tiny_workdir / PLAN).read_text())  # JSON is YAML
    assert (plan["n_slabs"], plan["halo_px"], plan["window_px"]) == (1, 0, 64)
    row = dict(zip(*[line.split("\t") for line in (tiny_workdir / metrics).read_text().splitlines()], strict=True))
    assert math.isfinite(float(row["psnr_cn_paper_db"])) and math.isfinite(float(row["ssim_cn_paper"]))
    assert row["seam_ratio"] in ("", "nan")  # one network: no seams to measure
