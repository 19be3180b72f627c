"""The validation workflow (issue 12) in Snakemake: the jobs a reference range and halves add,
and bad sheet values stopping the run before anything executes."""

import re

import pytest

from .conftest import run_snakemake

pytestmark = pytest.mark.workflow

HEADER = ("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
          "\tmethods\tseed\tshape_px\treference_tilt_min_deg\treference_tilt_max_deg\thalves\n")


def _jobs(stdout: str) -> dict[str, int]:
    table = stdout[stdout.index("job  "):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_reference_and_halves_schedule_each_half_as_a_dataset(tiny_workdir):
    (tiny_workdir / "config" / "datasets.tsv").write_text(
        HEADER + "sim\tsynthetic\tmixed_shapes\t8.0\t-60\t60\t4\ttiltseries\t5\twbp,cn\t1\t24x32x32\t-76\t76\talternate\n")
    result = run_snakemake(tiny_workdir, "-n", "-p", "--cores", "1")
    assert result.returncode == 0, result.stderr
    jobs = _jobs(result.stdout)
    assert jobs["split_halves"] == 1 and jobs["reconstruct_reference"] == 1
    assert jobs["reconstruct_wbp"] == 3  # the whole series and both halves
    assert jobs["plan_slabs"] == 3 and jobs["evaluate"] == 3  # corrupted, wbp, cn of the sheet's row only
    assert "sim__even" in result.stdout and "sim__odd" in result.stdout
    assert '"seed":1' in result.stdout.replace(" ", "")  # cn.seed + 1 for the even half (config offset)


@pytest.mark.parametrize(("row", "message"), [
    ("sim\tsynthetic\tmixed_shapes\t8.0\t-60\t60\t4\ttiltseries\t5\twbp\t1\t24x32x32\t-50\t76\t",
     "column reference_tilt_min_deg (-50) is above tilt_min_deg (-60)"),
    ("sim\tsynthetic\tmixed_shapes\t8.0\t-30\t30\t20\ttiltseries\t5\twbp\t1\t24x32x32\t\t\talternate",
     "column halves: a half has only 2 tilt(s)"),
    ("tomo\ttomogram\t../../shared/data/real/tomo_microtubule13pf_cylindra.mrc\t10.52\t-60\t60\t\t\t\t\t0\t\t\t\t"
     "alternate", "column halves needs a tilt series, but kind is tomogram"),
])
def test_bad_validation_columns_stop_before_running(tiny_workdir, row, message):
    (tiny_workdir / "config" / "datasets.tsv").write_text(HEADER + row + "\n")
    result = run_snakemake(tiny_workdir, "-n", "--cores", "1")
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "line 2 (" in result.stderr + result.stdout  # the sheet's line and the dataset
    assert not (tiny_workdir / "results").exists()
