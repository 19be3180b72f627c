"""An ``empiar`` row end to end in Snakemake: fetch_dataset downloads the tilt series and its
.tlt from a local HTTP mirror of the EMPIAR layout (127.0.0.1), then reconstruct_wbp and
evaluate run on the local copies; a second run downloads nothing."""

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from cryo_pipeline.io.angles import write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, write_mrc

from .conftest import run_snakemake

pytestmark = pytest.mark.workflow

BASE = "/empiar/world_availability/10045/data/ribosomes/Tomograms/05"
HEADER = ("dataset", "kind", "source", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg", "tilt_step_deg",
          "corruption", "snr", "methods", "angles", "data_kind", "sha256")


@pytest.fixture
def empiar_workdir(tiny_workdir, http_mirror, tmp_path_factory):
    """tiny_workdir whose sheet holds one empiar row served by ``http_mirror``."""
    folder = tmp_path_factory.mktemp("upstream")
    rng = np.random.default_rng(3)
    write_mrc(folder / "ts.mrcs", rng.random((9, 12, 16), dtype=np.float32), voxel_size_angstrom=10.0)
    write_tilt_angles(folder / "ts.tlt", np.linspace(-48.0, 48.0, 9))
    stack, angles = (folder / "ts.mrcs").read_bytes(), (folder / "ts.tlt").read_bytes()
    http_mirror.files[f"{BASE}/IS002_291013_005.mrcs"] = stack
    http_mirror.files[f"{BASE}/IS002_291013_005.tlt"] = angles
    row = ("ribo05", "empiar", http_mirror.url(f"{BASE}/IS002_291013_005.mrcs"), "", "-45", "45", "", "", "", "wbp",
           http_mirror.url(f"{BASE}/IS002_291013_005.tlt"), "tiltseries", hashlib.sha256(stack).hexdigest())
    (tiny_workdir / "config" / "datasets.tsv").write_text("\t".join(HEADER) + "\n" + "\t".join(row) + "\n")
    return tiny_workdir, http_mirror, stack, angles


def test_dry_run_schedules_one_fetch_per_file_before_wbp(empiar_workdir):
    workdir, mirror, _, _ = empiar_workdir
    result = run_snakemake(workdir, "-n", "-p", "--cores", "1", "results/tiny/ribo05/wbp/metrics.tsv")
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    assert counts == {"fetch_dataset": 2, "reconstruct_wbp": 1, "evaluate": 1}
    printed = " ".join(result.stdout.split())  # the shell commands, continuation lines joined
    for name, role in (("IS002_291013_005.mrcs", "source"), ("IS002_291013_005.tlt", "angles")):
        assert f"--role {role} --out resources/ribo05/{name} --record resources/ribo05/{name}.fetch.json" in printed
    assert printed.count(f'"source":"{mirror.url(BASE)}/IS002_291013_005.mrcs"') == 2  # fetch gets the URLs
    assert ("reconstruct-wbp --tilt-series resources/ribo05/IS002_291013_005.mrcs "
            "--angles resources/ribo05/IS002_291013_005.tlt") in printed
    # the stages get the local copies (evaluate reads the row's angles; no stage after the fetch sees a URL)
    assert '"angles":"resources/ribo05/IS002_291013_005.tlt"' in printed
    assert printed.count(mirror.url(BASE)) == 4  # the two fetch jobs' source and angles only
    assert mirror.requests == []  # a dry run downloads nothing


def test_fetch_then_wbp_and_evaluate_on_the_local_copies(empiar_workdir):
    workdir, mirror, stack, angles = empiar_workdir
    target = "results/tiny/ribo05/wbp/metrics.tsv"
    result = run_snakemake(workdir, "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = workdir / "resources" / "ribo05"
    assert (fetched / "IS002_291013_005.mrcs").read_bytes() == stack
    assert (fetched / "IS002_291013_005.tlt").read_bytes() == angles
    assert not list(fetched.glob("*.part"))
    record = json.loads((fetched / "IS002_291013_005.mrcs.fetch.json").read_text())["fetch"]
    assert record["sha256"] == record["sha256_expected"] == hashlib.sha256(stack).hexdigest()
    assert record["url"] == mirror.url(f"{BASE}/IS002_291013_005.mrcs") and record["downloaded"]
    assert sorted(path for path, _ in mirror.requests) == [f"{BASE}/IS002_291013_005.mrcs",
                                                          f"{BASE}/IS002_291013_005.tlt"]
    wbp = read_mrc(workdir / "results" / "tiny" / "ribo05" / "wbp" / "volume.mrc")
    assert wbp.data.shape == (16, 12, 16) and wbp.voxel_size_angstrom == pytest.approx(10.0)
    (metrics,) = pd.read_csv(workdir / target, sep="\t").to_dict(orient="records")
    assert (metrics["dataset"], metrics["method"], metrics["kind"]) == ("ribo05", "wbp", "empiar")
    assert metrics["volume_path"] == "results/tiny/ribo05/wbp/volume.mrc"
    assert (workdir / "logs" / "fetch_dataset" / "ribo05" / "IS002_291013_005.mrcs.log").is_file()
    again = run_snakemake(workdir, "--cores", "2", target, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert len(mirror.requests) == 2
