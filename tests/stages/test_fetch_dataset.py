"""Stage and command ``fetch-dataset``: an empiar row's files from a local HTTP mirror of the
EMPIAR layout into resources/<dataset>/, with a JSON record of what was fetched; a 404 or a
checksum mismatch is one ``error:`` line naming the URL and exit status 2."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from cryo_pipeline.cli.main import main
from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.stages import fetch_dataset

BASE = "/empiar/world_availability/10045/data/ribosomes/Tomograms/11"
STACK = b"MRC stack bytes " * 4096
TLT = b"-60.0\n-57.0\n57.0\n60.0\n"


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` reconfigures the root logger; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def mirror(http_mirror):
    http_mirror.files[f"{BASE}/IS002_291013_011.mrcs"] = STACK
    http_mirror.files[f"{BASE}/IS002_291013_011.tlt"] = TLT
    return http_mirror


def _row(mirror, **changes) -> DatasetRow:
    values = {
        "dataset": "ribo11", "kind": "empiar", "data_kind": "tiltseries", "tilt_min_deg": -60, "tilt_max_deg": 60,
        "source": mirror.url(f"{BASE}/IS002_291013_011.mrcs"), "angles": mirror.url(f"{BASE}/IS002_291013_011.tlt"),
        "sha256": hashlib.sha256(STACK).hexdigest(), "methods": "wbp",
    }
    return DatasetRow.model_validate({**values, **changes})


def test_stage_fetches_both_files_with_records(mirror, tmp_path):
    row = _row(mirror)
    files = row.fetched_files(str(tmp_path / "resources"))
    assert files == {"source": f"{tmp_path}/resources/ribo11/IS002_291013_011.mrcs",
                     "angles": f"{tmp_path}/resources/ribo11/IS002_291013_011.tlt"}
    for role, path in files.items():
        fetch_dataset.run(dataset=row, role=role, out=path, progress=False)
    folder = tmp_path / "resources" / "ribo11"
    assert sorted(p.name for p in folder.iterdir()) == [
        "IS002_291013_011.mrcs", "IS002_291013_011.mrcs.fetch.json",
        "IS002_291013_011.tlt", "IS002_291013_011.tlt.fetch.json"]
    assert (folder / "IS002_291013_011.mrcs").read_bytes() == STACK
    assert (folder / "IS002_291013_011.tlt").read_bytes() == TLT
    record = json.loads((folder / "IS002_291013_011.mrcs.fetch.json").read_text())
    assert record["stage"] == "fetch_dataset" and record["dataset"]["dataset"] == "ribo11"
    assert record["fetch"] == {
        "role": "source", "url": row.source, "path": files["source"], "size_bytes": len(STACK),
        "sha256": hashlib.sha256(STACK).hexdigest(), "sha256_expected": row.sha256, "downloaded": True,
        "resumed_from_bytes": 0, "attempts": 1}
    angles = json.loads((folder / "IS002_291013_011.tlt.fetch.json").read_text())["fetch"]
    assert angles["sha256"] == hashlib.sha256(TLT).hexdigest() and angles["sha256_expected"] is None
    assert record["runtime_s"] >= 0 and record["time_utc"]


def test_the_fetched_row_points_at_the_local_copies(mirror):
    local = _row(mirror).with_fetched_paths()
    assert (local.kind, local.effective_kind, local.has_tilt_series) == ("empiar", "tiltseries", True)
    assert (local.source, local.angles) == ("resources/ribo11/IS002_291013_011.mrcs",
                                            "resources/ribo11/IS002_291013_011.tlt")
    assert DatasetRow.model_validate_json(local.model_dump_json()) == local  # what --dataset-json carries


@pytest.mark.parametrize(
    ("row", "role", "message"),
    [
        ({"kind": "tiltseries", "data_kind": None, "sha256": None, "source": "/d/ts.mrcs", "angles": "/d/ts.tlt"},
         "source", "dataset ribo11: fetch_dataset needs kind 'empiar', got 'tiltseries'"),
        ({"data_kind": "tomogram", "angles": None, "methods": "cryogen"}, "angles",
         "dataset ribo11: the row has no angles column to fetch"),
        ({}, "mask", "dataset ribo11: role 'mask' must be one of source, angles"),
    ],
)
def test_stage_rejects_what_it_cannot_fetch(mirror, tmp_path, row, role, message):
    dataset = _row(mirror, **row)
    with pytest.raises(ValueError, match=f"^{message}$"):
        fetch_dataset.run(dataset=dataset, role=role, out=tmp_path / "x.mrcs", progress=False)
    assert list(tmp_path.iterdir()) == [] and mirror.requests == []


def test_command_fetches_and_writes_the_record(mirror, tmp_path):
    out = tmp_path / "resources" / "ribo11" / "IS002_291013_011.tlt"
    status = main(["fetch-dataset", "--dataset-json", _row(mirror).model_dump_json(), "--role", "angles",
                   "--out", str(out), "--record", str(tmp_path / "rec.json"), "--no-progress"])
    assert status == 0
    assert out.read_bytes() == TLT
    assert json.loads((tmp_path / "rec.json").read_text())["fetch"]["url"] == mirror.url(f"{BASE}/IS002_291013_011.tlt")


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return errors[0]


def test_command_404_is_one_line_naming_the_url_and_exit_2(mirror, tmp_path, capsys):
    missing = mirror.url(f"{BASE}/IS002_291013_099.mrcs")
    row = _row(mirror, source=missing, sha256=None)
    status = main(["fetch-dataset", "--dataset-json", row.model_dump_json(), "--out", str(tmp_path / "o" / "x.mrcs"),
                   "--retries", "3", "--no-progress"])
    assert status == 2
    assert _one_error_line(capsys) == (f"error: download of {missing} failed: HTTP 404 Not Found; "
                                       "check the URL in the dataset sheet")
    assert len(mirror.requests) == 1
    assert sorted((tmp_path / "o").iterdir()) == []


def test_command_checksum_mismatch_is_one_line_with_both_sums(mirror, tmp_path, capsys):
    row = _row(mirror, sha256="ab" * 32)
    status = main(["fetch-dataset", "--dataset-json", row.model_dump_json(), "--out", str(tmp_path / "x.mrcs"),
                   "--no-progress"])
    assert status == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: sha256 mismatch for {row.source}: expected {'ab' * 32}, "
                           f"got {hashlib.sha256(STACK).hexdigest()}; ")
    assert list(tmp_path.iterdir()) == []
