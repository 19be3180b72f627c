"""A tiny copy of the workflow's config in a temp folder, and a Snakemake runner."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

TINY_SHEET = (
    "dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr\tmethods\tseed\tshape_px\n"
    "sphere_fourier\tsynthetic\thollow_sphere\t8.0\t-60\t60\t2\tfourier\t\t\t0\t32\n"
    "shapes.ts\tsynthetic\tmixed_shapes\t8.0\t-50\t65\t3\ttiltseries\t20\twbp\t1\t24x32x32\n"
)


def run_snakemake(workdir: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile with ``workdir`` as working directory (no time limit by default: a run takes
    what the machine gives it; pytest-timeout ends a hang and ``subprocess.run`` then kills Snakemake)."""
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


@pytest.fixture
def tiny_workdir(tmp_path: Path) -> Path:
    """A working directory with config/config.yaml (run 'tiny') and a two-dataset sheet."""
    (tmp_path / "config").mkdir()
    config = (REPO / "config" / "config.yaml").read_text().replace("run: demo", "run: tiny")
    (tmp_path / "config" / "config.yaml").write_text(config)
    (tmp_path / "config" / "datasets.tsv").write_text(TINY_SHEET)
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    return tmp_path
