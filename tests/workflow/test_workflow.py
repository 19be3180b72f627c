"""Snakemake itself: lint, dry run, a tiny real run, and bad config/sheet errors."""

import re

import pandas as pd
import pytest

from cryo_pipeline.io.mrc import read_mrc

from .conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def test_lint_reports_only_the_missing_software_environment():
    # Snakemake exits 1 when it has any lint; we accept exactly two kinds: all rules run in the
    # project's own environment (README), so no rule names a conda env or container; and the
    # run-time settings reach commands as {EXECUTION_JSON:q} on purpose, not as params, so that
    # changing them reruns nothing (Snakemake's rerun triggers include params, not the command line).
    result = run_snakemake(REPO, "--lint")
    assert "Lints for rule" in result.stdout + result.stderr, result.stderr
    lints = re.findall(r"^\s+\* (.+?):?$", result.stdout + result.stderr, flags=re.M)
    assert lints, "expected the documented 'conda environment' lint"
    assert set(lints) == {"Specify a conda environment or container for each rule.",
                          "Shell command directly uses variable EXECUTION_JSON from outside of the rule"}


def test_dry_run_of_the_demo_schedules_every_stage():
    result = run_snakemake(REPO, "-n", "--cores", "1", "--forceall")
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout)
    assert counts["simulate_volume"] == 3
    assert counts["apply_fourier_wedge"] == 1
    assert counts["project_tilt_series"] == 2
    assert counts["reconstruct_wbp"] == 2
    # corrupted for all three, wbp for the two tilt-series datasets, isonet and cryogen for the sphere, cn for shapes
    assert counts["evaluate"] == 8
    # CN: the checkpoint and the stitch are scheduled; the fit_slab jobs appear once the plan exists
    assert counts["plan_slabs"] == 1 and counts["stitch_slabs"] == 1
    for rule in ("bin_tomogram", "make_mask", "extract_subtomos"):
        assert counts[rule] == 1, rule  # only the dataset on the CryoGEN/IsoNet path
    assert "deconvolve_tomogram" not in counts  # no defocus in the demo sheet
    assert counts["train_cryogen"] == 2 and counts["predict_cryogen"] == 2
    assert counts["report"] == 1


@pytest.mark.slow
def test_tiny_real_run_writes_metrics_and_report(tiny_workdir):
    result = run_snakemake(tiny_workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tiny_workdir / "results" / "tiny"
    metrics = pd.read_csv(run_dir / "metrics.tsv", sep="\t")
    assert sorted(zip(metrics.dataset, metrics.method)) == [
        ("shapes.ts", "corrupted"),
        ("shapes.ts", "wbp"),
        ("sphere_fourier", "corrupted"),
    ]
    sphere = metrics.set_index(["dataset", "method"]).loc[("sphere_fourier", "corrupted")]
    # the Fourier wedge of a thin shell: the paper-printed PSNR sits near 21-22 dB at every size
    assert 19.0 < sphere.psnr_paper_db < 24.0
    assert sphere.wedge_fill < 1e-6
    assert (metrics.runtime_s > 0).all()
    ground_truth = read_mrc(run_dir / "shapes.ts" / "ground_truth.mrc")
    wbp = read_mrc(run_dir / "shapes.ts" / "wbp" / "volume.mrc")
    assert wbp.data.shape == ground_truth.data.shape == (24, 32, 32)
    assert wbp.voxel_size_angstrom == pytest.approx(8.0)
    html = (run_dir / "report.html").read_text()
    assert "sphere_fourier" in html and "shapes.ts" in html and "data:image/png;base64," in html
    assert (tiny_workdir / "logs" / "tiny" / "reconstruct_wbp" / "shapes.ts.log").is_file()
    assert (tiny_workdir / "benchmarks" / "tiny" / "reconstruct_wbp" / "shapes.ts.tsv").is_file()
    # a second run has nothing to do
    again = run_snakemake(tiny_workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(("old", "new", "message"), [
    ("filter: ramp", "filtr: ramp", "filtr"),  # an unknown key
    ("  seed: 0\n\npredict:", "  seed: 0\n  device: cuda\n\npredict:", "train.device moved to execution.device"),
])
def test_a_bad_config_key_stops_before_running_and_says_why(tiny_workdir, old, new, message):
    config = tiny_workdir / "config" / "config.yaml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    result = run_snakemake(tiny_workdir, "-n", "--cores", "1")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_unknown_sheet_column_names_the_column(tiny_workdir):
    sheet = tiny_workdir / "config" / "datasets.tsv"
    lines = sheet.read_text().splitlines()
    sheet.write_text("\n".join([lines[0] + "\tcolour"] + [line + "\tred" for line in lines[1:]]) + "\n")
    result = run_snakemake(tiny_workdir, "-n", "--cores", "1")
    assert result.returncode != 0
    assert "unknown column(s) colour" in result.stdout + result.stderr


def test_cn_without_a_tilt_series_is_a_clear_error(tiny_workdir):
    sheet = tiny_workdir / "config" / "datasets.tsv"
    sheet.write_text(sheet.read_text().replace("\tfourier\t\t\t0\t32", "\tfourier\t\tcn\t0\t32"))
    result = run_snakemake(tiny_workdir, "-n", "--cores", "1")
    assert result.returncode != 0
    assert "method 'cn' needs a tilt series, but corruption is 'fourier'" in result.stdout + result.stderr

