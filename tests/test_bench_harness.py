"""The benchmark harness (bench/) and a quick run of the projector benchmark."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is a top-level folder, not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import harness
from bench.__main__ import main
from bench.harness import BenchResult, write_result

OPERATIONS = ("forward", "adjoint", "wbp")


def _astra_available() -> bool:
    from bench.projector import load_astra

    return load_astra()[0] is not None


@pytest.fixture(scope="module")
def quick_projector_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["projector", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow  # runs the projector benchmark (quick): not in make test-fast
def test_projector_quick_writes_json_and_markdown(quick_projector_run):
    json_path = quick_projector_run / "projector.json"
    md_path = quick_projector_run / "projector.md"
    assert json_path.is_file() and md_path.is_file()
    assert not list(quick_projector_run.glob("*.tmp")) and not list(quick_projector_run.glob(".*.tmp"))

    payload = json.loads(json_path.read_text())
    assert payload["name"] == "projector"
    assert payload["params"]["size_px"] == 64 and payload["params"]["n_tilts"] == 61
    machine = payload["machine"]
    for key in ("cpu_count", "platform", "torch_version", "numpy_version", "utc_time"):
        assert machine[key]

    rows = {(r["method"], r["operation"]): r for r in payload["rows"]}
    expected = [("ours", "build")] + [(m, op) for m in ("ours", "scipy") for op in OPERATIONS]
    if _astra_available():
        expected += [(f"astra-{k}", op) for k in ("linear", "strip") for op in ("build", *OPERATIONS)]
    else:
        assert any(n.startswith("astra unavailable:") for n in payload["notes"])
        assert not any(m.startswith("astra") for m, _ in rows)
    for key in expected:
        assert key in rows, f"missing row {key}"

    for (method, operation), row in rows.items():
        assert row["seconds"] > 0 and row["min_s"] > 0, (method, operation)
        assert row["peak_rss_mb"] > 0
        if operation != "build":
            assert row["voxels_tilts_per_s"] > 0
            assert row["ratio_vs_ours"] > 0
            # every method computes the same thing in our geometry
            assert row["corr_vs_ours"] > 0.99, (method, operation, row["corr_vs_ours"])
    for op in OPERATIONS:
        assert rows[("ours", op)]["ratio_vs_ours"] == pytest.approx(1.0)

    checks = payload["params"]["geometry_check"]
    assert all(value > 0.99 for value in checks.values()), checks
    assert ("astra-linear_forward" in checks) == _astra_available()

    md = md_path.read_text()
    assert md.startswith("# Benchmark: projector")
    assert "| method | operation | seconds |" in md
    for method, operation in expected:
        assert f"| {method} | {operation} |" in md


def test_load_astra_reports_reason_when_missing(monkeypatch):
    from bench.projector import load_astra

    monkeypatch.setitem(sys.modules, "astra", None)  # makes `import astra` raise ImportError
    module, reason = load_astra()
    assert module is None
    assert reason and "import of astra halted" in reason


def test_write_result_is_atomic_and_complete(tmp_path, monkeypatch):
    result = BenchResult(
        name="demo",
        params={"size_px": 8, "nested": {"a": 1}},
        rows=[{"method": "x", "seconds": 0.5, "runs_s": [0.5, 0.6]}, {"method": "y|z", "seconds": 2e-5, "extra": None}],
        notes=["first note", "second"],
    )
    out = tmp_path / "results"

    # Every file must reach its final name only through os.replace from a temp file in out_dir.
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy_replace(src, dst):
        src, dst = Path(src), Path(dst)
        assert src.parent == dst.parent == out
        assert src.name.endswith(".tmp") and src.is_file()
        assert not dst.exists()  # nothing partial was ever written under the final name
        replaced.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(harness.os, "replace", spy_replace)
    json_path, md_path = write_result(result, out)
    assert {dst.name for _, dst in replaced} == {"demo.json", "demo.md"}
    assert sorted(p.name for p in out.iterdir()) == ["demo.json", "demo.md"]  # no temp files left

    payload = json.loads(json_path.read_text())
    assert payload["rows"] == result.rows and payload["notes"] == result.notes
    assert payload["params"]["nested"] == {"a": 1}
    assert payload["machine"]["cpu_count"] >= 1

    md = md_path.read_text()
    assert "| method | seconds | extra |" in md  # list-valued columns stay in the JSON only
    assert "| y\\|z | 2e-05 | — |" in md
    assert "- first note" in md

    # A failing write leaves the previous file intact and no temp file behind.
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(harness.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_result(BenchResult(name="demo", rows=[{"method": "new"}]), out)
    assert json.loads(json_path.read_text())["rows"] == result.rows
    assert sorted(p.name for p in out.iterdir()) == ["demo.json", "demo.md"]


def test_timeit_reports_runs():
    calls = []
    timing = harness.timeit(lambda: calls.append(1) or len(calls), repeat=3, warmup=2)
    assert len(calls) == 5 and len(timing["runs"]) == 3
    assert 0 <= timing["min_s"] <= timing["median_s"]
    assert timing["last"] == 5
    assert harness.peak_rss_mb() > 0
    with pytest.raises(ValueError):
        harness.timeit(lambda: None, repeat=0)


def test_unknown_benchmark_name_lists_known_ones(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["no-such-benchmark"])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'no-such-benchmark'" in err
    assert "projector" in err


def test_list_and_registry(capsys):
    assert main(["list"]) == 0
    assert "projector" in capsys.readouterr().out
    assert "projector" in harness.BENCHMARKS
    with pytest.raises(ValueError, match="reserved"):
        harness.register("all")
    with pytest.raises(ValueError, match="already registered"):
        harness.register("projector")(lambda *, quick=False: BenchResult(name="projector"))
