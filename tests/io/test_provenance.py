"""Tests for provenance records."""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

import cryo_pipeline
from cryo_pipeline.io.provenance import provenance_record, to_jsonable, write_provenance_json


def test_record_fields():
    before = dt.datetime.now(dt.UTC)
    rec = provenance_record(config={"lr": 1e-4, "out": Path("/x/y"), "n": np.int64(3)},
                            command=["cryo-pipeline", "fit-slab", "--slab", "2"])
    after = dt.datetime.now(dt.UTC)
    assert rec["package"] == "cryo_pipeline"
    assert rec["package_version"] == cryo_pipeline.__version__
    assert rec["python_version"] == platform.python_version()
    assert rec["numpy_version"] == np.__version__
    assert rec["torch_version"]  # installed in the test environment
    assert rec["hostname"]
    stamp = dt.datetime.fromisoformat(rec["time_utc"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert before <= stamp <= after
    assert rec["command"] == ["cryo-pipeline", "fit-slab", "--slab", "2"]
    assert rec["config"] == {"lr": 1e-4, "out": "/x/y", "n": 3}
    assert json.loads(json.dumps(rec)) == rec  # plain JSON types only


def test_defaults_use_sys_argv_and_empty_config():
    rec = provenance_record()
    assert rec["command"] == [str(a) for a in sys.argv]
    assert rec["config"] == {}


def test_pydantic_config_is_dumped():
    pydantic = pytest.importorskip("pydantic")

    class Cfg(pydantic.BaseModel):
        tile_px: int = 64
        path: Path = Path("a b/c")

    assert provenance_record(config=Cfg(), command=[])["config"] == {"tile_px": 64, "path": "a b/c"}


def test_write_json_sorted_indented(tmp_path):
    rec = provenance_record(config={"b": 1, "a": [1, 2]}, command=["x"])
    path = tmp_path / "logs" / "prov.json"
    write_provenance_json(path, rec)
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == rec
    assert text == json.dumps(rec, indent=2, sort_keys=True) + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["prov.json"]


def test_unserialisable_values_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="object is not JSON serialisable"):
        to_jsonable({"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        write_provenance_json(tmp_path / "p.json", {"nan": float("nan")})
    assert not (tmp_path / "p.json").exists()
