"""execution.predict_n_jobs > 1: N predict_cryogen_tiles jobs and one stitch_cryogen replace predict_cryogen."""

import re

import pytest

from .conftest import run_snakemake

pytestmark = pytest.mark.workflow

SHEET = (
    "dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr\tmethods\tseed\tshape_px\n"
    "sphere_fourier\tsynthetic\thollow_sphere\t8.0\t-60\t60\t2\tfourier\t\tisonet\t0\t64\n"
)


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def test_dry_run_with_three_predict_jobs(tiny_workdir):
    config = tiny_workdir / "config" / "config.yaml"
    text = config.read_text()
    assert re.search(r"^  predict_n_jobs: 1 ", text, flags=re.M), "config.yaml's execution section should list it"
    config.write_text(re.sub(r"^  predict_n_jobs: 1 ", "  predict_n_jobs: 3 ", text, flags=re.M))
    (tiny_workdir / "config" / "datasets.tsv").write_text(SHEET)
    result = run_snakemake(tiny_workdir, "-n", "-p", "--cores", "1")
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout)
    assert counts["predict_cryogen_tiles"] == 3 and counts["stitch_cryogen"] == 1
    assert "predict_cryogen" not in counts
    assert counts["evaluate"] == 2  # corrupted + isonet: evaluate reads the stitched volume unchanged
    base = "results/tiny/sphere_fourier/isonet"
    for group in range(3):
        assert f"--group {group} --n-groups 3" in result.stdout
        assert f"--out-tiles {base}/tiles/of_3/group_{group}.zarr" in result.stdout
    tiles = " ".join(f"{base}/tiles/of_3/group_{g}.zarr" for g in range(3))
    assert f"stitch-tiles --tile-stores {tiles} --meta" in result.stdout
    assert f"--out {base}/volume.mrc --out-zarr {base}/volume.zarr" in result.stdout
