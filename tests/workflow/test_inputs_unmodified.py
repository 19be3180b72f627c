"""Inputs are never modified (issue 8, item 6): a real workflow run leaves every input as it was.

Before a Snakemake run of a small sheet (a real STEM tilt series from
``shared/data/real`` reconstructed by WBP, reached through a folder and a link whose names
hold spaces and dots, plus a tiny phantom), the test records sha256, size, mtime and inode
of every input: the sheet, the config, the profiles and every file of the real-data
folder. After the run all of them must be identical (same inode: not replaced by a
rewritten copy either), and no file may have appeared beside the inputs (no temporary
or sidecar file next to the user's data).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cryo_pipeline.io.mrc import read_mrc

from .conftest import REPO, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

REAL = REPO.parent / "shared" / "data" / "real"
SERIES, ANGLES = "tiltseries_haadf_needle_etspy.mrc", "tiltseries_haadf_needle_etspy.rawtlt"
COLUMNS = ("dataset", "kind", "source", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg", "tilt_step_deg",
           "corruption", "snr", "methods", "angles", "seed", "shape_px")


def _fingerprint(path: Path) -> tuple:
    """sha256, size, mtime (ns), inode and mode of a file (links followed)."""
    info = path.stat()
    return (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_size, info.st_mtime_ns, info.st_ino,
            info.st_mode)


def _snapshot(folders: list[Path]) -> dict[str, tuple]:
    """Every file under ``folders`` (links followed) with its fingerprint."""
    found = {}
    for folder in folders:
        for root, _, files in os.walk(folder, followlinks=True):
            for name in files:
                path = Path(root) / name
                found[str(path)] = _fingerprint(path)
    return found


def test_a_workflow_run_modifies_no_input(tiny_workdir):
    if not (REAL / SERIES).is_file() or not (REAL / ANGLES).is_file():
        pytest.skip(f"real data {REAL / SERIES} is missing (see shared/data/real/MANIFEST.md)")
    raw = tiny_workdir / "raw data.v1"  # spaces and dots in folder and file names (IsoNet breaks on dots)
    raw.mkdir()
    (raw / "needle 33.60Apx.mrc").symlink_to(REAL / SERIES)
    (raw / "needle 33.60Apx.rawtlt").symlink_to(REAL / ANGLES)
    rows = [
        {"dataset": "needle_33.60Apx", "kind": "tiltseries", "source": "../raw data.v1/needle 33.60Apx.mrc",
         "voxel_size_angstrom": "33.6", "tilt_min_deg": "-60", "tilt_max_deg": "60", "methods": "wbp",
         "angles": "../raw data.v1/needle 33.60Apx.rawtlt"},
        {"dataset": "sphere", "kind": "synthetic", "source": "hollow_sphere", "voxel_size_angstrom": "8",
         "tilt_min_deg": "-60", "tilt_max_deg": "60", "tilt_step_deg": "2", "corruption": "fourier",
         "shape_px": "24"},
    ]
    sheet = tiny_workdir / "config" / "datasets.tsv"
    sheet.write_text("# inputs-unmodified test\n" + "\t".join(COLUMNS) + "\n"
                     + "".join("\t".join(r.get(c, "") for c in COLUMNS) + "\n" for r in rows))
    config = tiny_workdir / "config" / "config.yaml"
    text = config.read_text().replace("run: tiny", "run: inputs")
    config.write_text(text.replace("thickness_px: null", "thickness_px: 48", 1))  # a thin slab: fast WBP
    inputs = [tiny_workdir / "config", tiny_workdir / "profiles", raw, REAL]
    before = _snapshot(inputs)
    assert len(before) >= 10 and str(raw / "needle 33.60Apx.mrc") in before

    result = run_snakemake(tiny_workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tiny_workdir / "results" / "inputs"
    volume = read_mrc(run_dir / "needle_33.60Apx" / "wbp" / "volume.mrc")
    assert volume.data.shape == (48, 256, 256) and volume.voxel_size_angstrom == pytest.approx(33.6)
    assert (run_dir / "report.html").is_file()
    after = _snapshot(inputs)
    assert sorted(after) == sorted(before), f"files appeared or vanished: {set(after) ^ set(before)}"
    changed = sorted(p for p in before if after[p] != before[p])
    assert not changed, f"inputs modified by the run: {changed}"
    assert all(p.is_symlink() for p in raw.iterdir())  # the links themselves were not replaced
