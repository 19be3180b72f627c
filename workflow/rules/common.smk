# Validation of config and dataset sheet, wildcard constraints, and the named helpers
# that rules use for inputs and params. No logic inside rules; no lambdas.
import json
import re
from pathlib import Path

from cryo_pipeline import __version__
from cryo_pipeline.config.dataset import FETCH_ROOT, IMPLEMENTED_METHODS
from cryo_pipeline.config.pipeline import parse_pipeline_config
from cryo_pipeline.io.sheet import read_dataset_sheet


validate(config, schema="../schemas/config.schema.yaml")
CFG = parse_pipeline_config(config, source="config")
RUN = CFG.run
DATASETS = {row.dataset: row for row in read_dataset_sheet(CFG.datasets)}

for _row in DATASETS.values():
    for _method in _row.methods:
        if _method not in IMPLEMENTED_METHODS:
            raise ValueError(
                f"{CFG.datasets}: dataset {_row.dataset} asks for method '{_method}', which cryo_pipeline "
                f"{__version__} does not implement yet; available: {', '.join(IMPLEMENTED_METHODS)}"
            )


wildcard_constraints:
    run=re.escape(RUN),
    dataset="|".join(re.escape(name) for name in DATASETS),
    method="corrupted|wbp|isonet|cryogen|cn",


def _row(wildcards):
    """The dataset's row as the stages see it: an empiar row points at its fetched files."""
    return DATASETS[wildcards.dataset].with_fetched_paths(FETCH_ROOT)


# Files that fetch_dataset downloads: {(dataset, file name): "source" | "angles"} for empiar rows.
FETCHED = {
    (name, Path(path).name): role
    for name, row in DATASETS.items()
    for role, path in row.fetched_files(FETCH_ROOT).items()
}


def fetch_file_pattern():
    """Wildcard constraint of fetch_dataset's {file}: exactly the sheet's fetched file names."""
    names = sorted({file for _, file in FETCHED})
    return "|".join(re.escape(file) for file in names) if names else "(?!)"


def fetch_dataset_json(wildcards):
    """The empiar row as written in the sheet (with its URLs), for fetch-dataset."""
    return DATASETS[wildcards.dataset].model_dump_json()


def fetch_role(wildcards):
    """Which file of the row {file} is: 'source' or 'angles'."""
    return FETCHED[(wildcards.dataset, wildcards.file)]


def dataset_json(wildcards):
    """The dataset's sheet row as JSON, for --dataset-json (params changes rerun the rule)."""
    return _row(wildcards).model_dump_json()


def stage_json(section):
    """A params function giving one stage config section as JSON."""

    def _json(wildcards):
        return getattr(CFG, section).model_dump_json()

    return _json


def pipeline_config_json(wildcards):
    """The whole resolved config, shown in the report."""
    return CFG.model_dump_json()


def tilt_series_inputs(wildcards):
    """Tilt series, angles and (synthetic) reference volume for reconstruct_wbp."""
    row = _row(wildcards)
    base = f"results/{wildcards.run}/{wildcards.dataset}"
    if row.kind == "synthetic":
        return {
            "tilt_series": f"{base}/tilt_series.mrc",
            "angles": f"{base}/tilt_series.tlt",
            "reference": f"{base}/ground_truth.mrc",
        }
    return {"tilt_series": row.source, "angles": row.angles}


def reference_volume(wildcards, input):
    """--reference-volume value: the ground truth for synthetic data, else empty."""
    return input.get("reference", "")


def _method_volume(wildcards, method):
    row = _row(wildcards)
    base = f"results/{wildcards.run}/{wildcards.dataset}"
    if method != "corrupted":
        return f"{base}/{method}/volume.mrc"
    if row.effective_kind == "tomogram":
        return row.source
    if row.kind == "synthetic" and row.corruption == "fourier":
        return f"{base}/fourier_wedged.mrc"
    return f"{base}/wbp/volume.mrc"


def preprocess_source(wildcards):
    """The tomogram the preprocessing starts from: the dataset's corrupted volume."""
    return _method_volume(wildcards, "corrupted")


def preprocessed_tomogram(wildcards):
    """The tomogram after bin (and deconvolve, where a defocus is given): what CryoGEN sees."""
    return _preprocessed_tomogram(wildcards)


def checkpoint_dir(wildcards):
    """Where train_cryogen keeps its epoch checkpoints (not an output: kept after a failure)."""
    return f"results/{wildcards.run}/{wildcards.dataset}/{wildcards.method}/checkpoints"


def _preprocessed_tomogram(wildcards):
    base = f"results/{wildcards.run}/{wildcards.dataset}/preprocess"
    return f"{base}/deconvolved.mrc" if _row(wildcards).has_ctf else f"{base}/binned.mrc"


def tile_group_outputs(wildcards):
    """The tile stores and records of the predict.n_jobs predict_cryogen_tiles groups (for stitch_cryogen)."""
    base = f"results/{wildcards.run}/{wildcards.dataset}/{wildcards.method}/tiles"
    groups = range(CFG.predict.n_jobs)
    return {
        "tiles": [f"{base}/group_{group}.zarr" for group in groups],
        "meta": [f"{base}/group_{group}.json" for group in groups],
    }


def mask_inputs(wildcards):
    """make_mask reads the deconvolved tomogram (binned when there is no CTF) and a user mask."""
    inputs = {"tomogram": _preprocessed_tomogram(wildcards)}
    if _row(wildcards).mask:
        inputs["user_mask"] = _row(wildcards).mask
    return inputs


def extraction_inputs(wildcards):
    """extract_subtomos reads the same tomogram as make_mask, and the mask."""
    return {
        "tomogram": _preprocessed_tomogram(wildcards),
        "mask": f"results/{wildcards.run}/{wildcards.dataset}/preprocess/mask.mrc",
    }


def preprocess_records(wildcards):
    """The extraction records of every dataset on the CryoGEN/IsoNet path (for the report)."""
    return [
        f"results/{wildcards.run}/{name}/preprocess/subtomos.json"
        for name, row in DATASETS.items()
        if row.needs_subtomograms
    ]


def loss_tables(wildcards):
    """The loss tables of every trained method (cryogen, isonet) of the run (for the report)."""
    return [
        f"results/{wildcards.run}/{name}/{method}/losses.tsv"
        for name, row in DATASETS.items()
        for method in row.methods
        if method in ("cryogen", "isonet")
    ]


def evaluation_inputs(wildcards):
    """The volume to score, its stage record (runtime), and the ground truth if known."""
    row = _row(wildcards)
    volume = _method_volume(wildcards, wildcards.method)
    inputs = {"volume": volume}
    if volume.startswith("results/"):
        inputs["meta"] = volume[: -len(".mrc")] + ".json"
    if row.has_ground_truth:
        inputs["ground_truth"] = f"results/{wildcards.run}/{wildcards.dataset}/ground_truth.mrc"
    return inputs


def optional_input(name):
    """A params function giving an optional named input's path, or an empty string."""

    def _value(wildcards, input):
        return input.get(name, "")

    return _value


def all_metric_tables(wildcards):
    """One metrics table per dataset: the corrupted input plus every requested method."""
    return [
        f"results/{wildcards.run}/{name}/{method}/metrics.tsv"
        for name, row in DATASETS.items()
        for method in ("corrupted", *row.methods)
    ]


def dataset_sheet(wildcards):
    """The dataset sheet (the report shows its settings and finds ablation sweeps in it)."""
    return CFG.datasets


def write_partial_report(snakemake_log):
    """onerror handler: the report of whatever finished, each missing result named with its log.

    With --keep-going a failed dataset blocks collect_metrics and report, so Snakemake calls
    this after every other job has run; `cryo-pipeline report` without --metrics builds the
    report from the metric tables that exist. It never raises (Snakemake already failed).
    """
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    wildcards = SimpleNamespace(run=RUN)
    # not report.html: that is rule report's output, and its presence would tell the next run
    # that nothing is left to do
    out, log_path = f"results/{RUN}/report.partial.html", f"logs/{RUN}/report_partial.log"
    command = [
        "cryo-pipeline", "report", "--run-name", RUN, "--sheet", CFG.datasets,
        "--expected-tables", *all_metric_tables(wildcards),
        "--preprocess", *[p for p in preprocess_records(wildcards) if os.path.exists(p)],
        "--losses", *[p for p in loss_tables(wildcards) if os.path.exists(p)],
        "--logs-dir", f"logs/{RUN}", "--benchmarks-dir", f"benchmarks/{RUN}",
        "--pipeline-config-json", CFG.model_dump_json(),
        "--workflow-log", " ".join(str(path) for path in snakemake_log or ()),
        "--out", out,
    ]
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as handle:
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    except OSError as error:
        print(f"partial report not written: {error}", file=sys.stderr)
        return
    if done.returncode == 0:
        print(f"Partial report of the finished datasets, failed ones listed with their logs: {out}", file=sys.stderr)
    else:
        print(f"partial report failed (exit {done.returncode}); see {log_path}", file=sys.stderr)


# --- CN (coordinate networks): inputs that depend on the plan_slabs checkpoint -----------------
def _cn_dir(wildcards):
    return f"results/{wildcards.run}/{wildcards.dataset}/cn"


def cn_tilt_series(wildcards):
    """The tilt series the CN rules fit (simulated or the sheet's / fetched file)."""
    return tilt_series_inputs(wildcards)["tilt_series"]


def _slab_plan(wildcards):
    """The slab plan of the dataset (after the plan_slabs checkpoint ran)."""
    plan_file = checkpoints.plan_slabs.get(run=wildcards.run, dataset=wildcards.dataset).output.plan
    with open(plan_file) as handle:
        return json.load(handle)


def slab_init_model(wildcards):
    """fit_slab's starting weights: the seed's, or (chain) the neighbour's towards the seed slab."""
    base = _cn_dir(wildcards)
    if CFG.cn.schedule == "seed":
        return f"{base}/seed/model.pt"
    seed_slab = _slab_plan(wildcards)["seed_slab"]
    slab = int(wildcards.slab)
    if slab == seed_slab:
        return f"{base}/seed/model.pt"
    parent = slab + 1 if slab < seed_slab else slab - 1
    return f"{base}/slabs/slab_{parent}.pt"


def slab_outputs(wildcards):
    """Every slab's tile store and record (stitch_slabs' inputs; reads the checkpoint's plan).

    The paths follow the plan's folder (cryo-pipeline stitch-slabs --plan derives the same ones),
    so the shell command names only the plan, which exists in a dry run before the checkpoint ran.
    """
    base = _cn_dir(wildcards)
    slabs = range(_slab_plan(wildcards)["n_slabs"])
    return {
        "tiles": [f"{base}/slabs/slab_{i}.zarr" for i in slabs],
        "meta": [f"{base}/slabs/slab_{i}.json" for i in slabs],
    }
