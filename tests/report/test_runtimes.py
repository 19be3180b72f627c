"""Runtimes from Snakemake benchmark files, and hardware from the stage records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from cryo_pipeline.report.records import hardware_text, host_rows, read_volume_record, slab_boundaries
from cryo_pipeline.report.runtimes import job_method, method_job_seconds, read_benchmarks, runtime_figure, split_stem

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root: Path, rule: str, stem: str, seconds: float, age_s: float = 0.0) -> None:
    path = root / rule / f"{stem}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t512.5\t900\t400\t450\t0\t1\t75.0\t{seconds / 2}\n")
    stamp = path.stat().st_mtime - age_s
    os.utime(path, (stamp, stamp))


def test_split_stem_takes_the_longest_dataset_name() -> None:
    names = ["shapes", "shapes.ts", "sphere"]
    assert split_stem("shapes.ts", names) == ("shapes.ts", "")
    assert split_stem("shapes.ts.wbp", names) == ("shapes.ts", "wbp")
    assert split_stem("shapes.cryogen.2", names) == ("shapes", "cryogen.2")
    assert split_stem("shapesX", names) is None and split_stem("other.wbp", names) is None
    assert job_method("predict_cryogen_tiles", "cryogen.2", ["cryogen"]) == "cryogen"
    assert job_method("fit_slab", "3", ["cn"]) == "cn"  # a CN slab job named by its slab
    assert job_method("reconstruct_wbp", "", ["wbp"]) == "wbp"
    assert job_method("simulate_volume", "", ["wbp"]) == ""
    assert job_method("evaluate", "gone", ["wbp"]) is None


def test_benchmarks_are_read_attributed_and_summed(tmp_path: Path) -> None:
    root = tmp_path / "benchmarks" / "run"
    _bench(root, "simulate_volume", "shapes.ts", 1.0, age_s=50)
    _bench(root, "reconstruct_wbp", "shapes.ts", 4.0, age_s=40)
    _bench(root, "evaluate", "shapes.ts.wbp", 2.0, age_s=30)
    _bench(root, "train_cryogen", "shapes.cryogen", 100.0, age_s=20)
    _bench(root, "predict_cryogen_tiles", "shapes.cryogen.0", 3.0, age_s=10)
    _bench(root, "predict_cryogen_tiles", "shapes.cryogen.1", 5.0, age_s=9)
    _bench(root, "train_cryogen", "shapes.isonet", 9.0)  # a method the sheet no longer asks for
    _bench(root, "simulate_volume", "removed_dataset", 9.0)
    (root / "report.tsv").write_text(HEADER + "1\t0\t1\t1\t1\t1\t0\t0\t1\t1\n")  # no dataset: ignored
    table = read_benchmarks(root, {"shapes": ["corrupted", "cryogen"], "shapes.ts": ["corrupted", "wbp"]})
    assert list(zip(table["dataset"], table["job"], strict=True)) == [
        ("shapes", "shapes.cryogen"), ("shapes", "shapes.cryogen.0"), ("shapes", "shapes.cryogen.1"),
        ("shapes.ts", "shapes.ts"), ("shapes.ts", "shapes.ts"), ("shapes.ts", "shapes.ts.wbp")]
    assert list(table["rule"][3:]) == ["simulate_volume", "reconstruct_wbp", "evaluate"]  # as the jobs ended
    first = table.iloc[0]
    assert (first["wall_s"], first["cpu_s"], first["max_rss_mb"], first["mean_load"]) == (100.0, 50.0, 512.5, 75.0)
    assert method_job_seconds(table) == {("shapes", "cryogen"): 108.0, ("shapes.ts", "wbp"): 4.0}  # no evaluate
    assert runtime_figure(table).startswith(b"\x89PNG") and plt.get_fignums() == []
    assert read_benchmarks(tmp_path / "absent", {"shapes": ["wbp"]}).empty
    assert read_benchmarks(None, {"shapes": ["wbp"]}).empty
    with pytest.raises(ValueError, match="at least one"):
        runtime_figure(table.iloc[:0])


def test_records_give_hardware_hosts_and_slab_boundaries(tmp_path: Path) -> None:
    volume = tmp_path / "cn" / "volume.mrc"
    volume.parent.mkdir()
    record = {"device": "cuda", "hostname": "node7", "gpu_name": "NVIDIA H100", "platform": "Linux-x",
              "python_version": "3.11.7", "torch_version": "2.13.0", "slab_boundaries_y": [16, 32]}
    volume.with_suffix(".json").write_text(json.dumps(record))
    assert read_volume_record(volume) == record
    assert read_volume_record(tmp_path / "none.mrc") == {} and read_volume_record("") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_volume_record(tmp_path / "bad.mrc") == {}
    assert hardware_text(record) == "NVIDIA H100 on node7"
    assert hardware_text({"hostname": "vm"}) == "vm" and hardware_text({}) == ""
    cpu = {"device": "cpu", "hostname": "vm", "platform": "Linux-y", "python_version": "3.11.7"}
    assert host_rows([record, cpu, {**cpu, "device": "cpu"}, {}]) == [
        ("node7", "cuda", "NVIDIA H100", "Linux-x", "python 3.11.7, torch 2.13.0"),
        ("vm", "cpu", "not recorded", "Linux-y", "python 3.11.7")]
    assert slab_boundaries(record) == [16.0, 32.0]
    assert slab_boundaries({"slab_boundaries_y": [[0, 16], [16, 32], [32, 48]]}) == [16.0, 32.0]
    assert slab_boundaries({"slab_boundaries_y": "16,32"}) == [] and slab_boundaries({}) == []
