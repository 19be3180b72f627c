# Validation of config and dataset sheet, wildcard constraints, and the named helpers
# that rules use for inputs and params. No logic inside rules; no lambdas.
#
# Params: a rule gets only the sheet columns and config keys its stage reads
# (sheet_row("<rule>"), stage_config("<rule>"); declared in cryo_pipeline/config/reads.py),
# so a value reruns exactly the jobs that read it. Run-time settings (the execution: section)
# reach the commands as --execution-json {EXECUTION_JSON:q}, never as params: changing them
# reruns nothing.
import re
from pathlib import Path
from types import SimpleNamespace

from cryo_pipeline import __version__
from cryo_pipeline.config.dataset import FETCH_ROOT
from cryo_pipeline.config.halves import config_for_dataset, half_name, half_rows, split_half_name
from cryo_pipeline.config.methods import (
    CORRECTED_METHODS,
    CORRUPTED,
    IMPLEMENTED_METHODS,
    SCORED,
    TRAINED_METHODS,
    wildcard_pattern,
)
from cryo_pipeline.config.pipeline import parse_pipeline_config
from cryo_pipeline.config.projection import config_json, row_json
from cryo_pipeline.io.sheet import read_dataset_sheet
from cryo_pipeline.io.slab_plan import init_model_path, read_slab_plan, slab_paths


CFG = parse_pipeline_config(config, source="config")  # first: a moved key gets its own message
validate(config, schema="../schemas/config.schema.yaml")
RUN = CFG.run
EXECUTION_JSON = CFG.execution.model_dump_json()
TRAINED = wildcard_pattern(TRAINED_METHODS)
DATASETS = {row.dataset: row for row in read_dataset_sheet(CFG.datasets)}
# the halves of every 'halves' row (<dataset>__even, <dataset>__odd): datasets of their own for every rule,
# but not rows of the report or of collect_metrics (their scores go into the parent's rows)
HALF_ROWS = {
    name: half
    for parent in DATASETS.values()
    for name, half in half_rows(parent.with_fetched_paths(FETCH_ROOT), base=f"results/{RUN}/{parent.dataset}").items()
}
ALL_ROWS = {**DATASETS, **HALF_ROWS}

for _row in DATASETS.values():
    for _method in _row.methods:
        if _method not in IMPLEMENTED_METHODS:
            raise ValueError(
                f"{CFG.datasets}: dataset {_row.dataset} asks for method '{_method}', which cryo_pipeline "
                f"{__version__} does not implement yet; available: {', '.join(IMPLEMENTED_METHODS)}"
            )


wildcard_constraints:
    run=re.escape(RUN),
    dataset="|".join(re.escape(name) for name in ALL_ROWS),
    method=wildcard_pattern(SCORED),


def _row(wildcards):
    """The dataset's row as the stages see it: an empiar row points at its fetched files."""
    return ALL_ROWS[wildcards.dataset].with_fetched_paths(FETCH_ROOT)


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
    """The empiar row's columns fetch-dataset reads, as written in the sheet (with its URLs)."""
    return row_json("fetch_dataset", DATASETS[wildcards.dataset])


def fetch_role(wildcards):
    """Which file of the row {file} is: 'source' or 'angles'."""
    return FETCHED[(wildcards.dataset, wildcards.file)]


def sheet_row(rule):
    """A params function: the columns of the dataset's row that ``rule``'s stage reads, as JSON."""

    def _json(wildcards):
        return row_json(rule, _row(wildcards))

    return _json


def stage_config(rule):
    """A params function: the keys of its config section that ``rule``'s stage reads, as JSON.

    A half row's jobs get their training seeds offset (cryo_pipeline.config.halves), so each half
    trains on its own; every other dataset gets the config as it is.
    """

    def _json(wildcards):
        return config_json(rule, config_for_dataset(CFG, wildcards.dataset))

    return _json


def science_config_json(wildcards):
    """The resolved config without the execution: section, shown in the report."""
    return CFG.science_json()


def tilt_series_inputs(wildcards):
    """Tilt series, angles and (synthetic) reference volume for reconstruct_wbp and the CN rules.

    A raw tilt series (an alignment, or its axis off y) comes aligned from align_tilt_series.
    """
    row = _row(wildcards)
    base = f"results/{wildcards.run}/{wildcards.dataset}"
    if row.kind == "synthetic":
        return {
            "tilt_series": f"{base}/tilt_series.mrc",
            "angles": f"{base}/tilt_series.tlt",
            "reference": f"{base}/ground_truth.mrc",
        }
    if row.needs_alignment:
        inputs = {"tilt_series": f"{base}/aligned/tilt_series.mrc", "angles": f"{base}/aligned/tilt_series.tlt"}
    else:
        inputs = {"tilt_series": row.source, "angles": row.angles}
    parent = split_half_name(wildcards.dataset)
    if parent and DATASETS[parent[0]].kind == "synthetic":  # a half: the parent's ground truth sets the depth
        inputs["reference"] = f"results/{wildcards.run}/{parent[0]}/ground_truth.mrc"
    return inputs


def raw_tilt_series_inputs(wildcards):
    """align_tilt_series: the raw stack, its angles and alignment file where the row has them (+ an IMOD .xtilt)."""
    row = _row(wildcards)
    files = {"tilt_series": row.source, "angles": row.angles, "alignment": row.alignment}
    if row.alignment and row.alignment.lower().endswith(".xf") and Path(row.alignment).with_suffix(".xtilt").is_file():
        files["xtilt"] = str(Path(row.alignment).with_suffix(".xtilt"))  # read by the stage beside the .xf
    return {role: path for role, path in files.items() if path}


def optional_input(role):
    """A params function: the input file ``role`` if the rule has it, else "" (an empty CLI value)."""

    def _value(wildcards, input):
        return input.get(role, "")

    return _value


def portal_datasets(data_kind):
    """Wildcard constraint of a fetch_portal rule: the sheet's portal rows of ``data_kind``."""
    names = sorted(n for n, r in DATASETS.items() if r.kind == "portal" and r.data_kind == data_kind)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def portal_row_json(rule):
    """A params function: the portal row's declared columns as written in the sheet (its id, not the fetched paths)."""

    def _json(wildcards):
        return row_json(rule, DATASETS[wildcards.dataset])

    return _json


def reference_volume(wildcards, input):
    """--reference-volume value: the ground truth for synthetic data, else empty."""
    return input.get("reference", "")


def _method_volume(wildcards, method):
    row = _row(wildcards)
    base = f"results/{wildcards.run}/{wildcards.dataset}"
    if method != CORRUPTED:
        return f"{base}/{method}/volume.mrc"
    if row.effective_kind == "tomogram":
        return row.source
    if row.kind == "synthetic" and row.corruption == "fourier":
        return f"{base}/fourier_wedged.mrc"
    return f"{base}/wbp/volume.mrc"


def preprocess_source(wildcards):
    """The tomogram the preprocessing starts from: the dataset's corrupted volume."""
    return _method_volume(wildcards, CORRUPTED)


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
    """The tile stores and records of the execution.predict_n_jobs tile groups (for stitch_cryogen).

    The group count is part of the path (tiles/of_<N>/group_<i>.zarr), not a param.
    """
    n_groups = CFG.execution.predict_n_jobs
    base = f"results/{wildcards.run}/{wildcards.dataset}/{wildcards.method}/tiles/of_{n_groups}"
    groups = range(n_groups)
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
        if method in TRAINED_METHODS
    ]


def evaluation_inputs(wildcards):
    """The volume to score, its stage record (runtime), the ground truth if known, and the
    validation inputs (issue 12): the full-range reference with the whole tilt series, the method's
    outputs on the two halves, and the volume the method was given."""
    row = _row(wildcards)
    volume = _method_volume(wildcards, wildcards.method)
    inputs = {"volume": volume}
    if volume.startswith("results/"):
        inputs["meta"] = volume[: -len(".mrc")] + ".json"
    if row.has_ground_truth:
        inputs["ground_truth"] = f"results/{wildcards.run}/{wildcards.dataset}/ground_truth.mrc"
    if row.reference_range_deg is not None:
        series = tilt_series_inputs(wildcards)
        inputs.update(reference=f"results/{wildcards.run}/{wildcards.dataset}/reference/volume.mrc",
                      tilt_series=series["tilt_series"], angles=series["angles"])
    if row.halves is not None:
        for half in ("even", "odd"):
            inputs[f"half_{half}"] = _method_volume(
                SimpleNamespace(run=wildcards.run, dataset=half_name(wildcards.dataset, half)), wildcards.method)
    method_input = _method_input(wildcards, row)
    if method_input:
        inputs["method_input"] = method_input
    return inputs


def _method_input(wildcards, row):
    """The volume a method was given (fidelity): the preprocessed tomogram (CryoGEN/IsoNet), the WBP
    (CN, which fits the tilts themselves; WBP itself). The input as given has none."""
    if wildcards.method in TRAINED_METHODS:
        return _preprocessed_tomogram(wildcards)
    if wildcards.method in ("wbp", "cn") and row.has_tilt_series:
        return f"results/{wildcards.run}/{wildcards.dataset}/wbp/volume.mrc"
    return ""


def heldout_tables(wildcards):
    """The held-out-tilt side table of every scored (dataset, method) (collect_metrics combines them)."""
    return [
        f"results/{wildcards.run}/{name}/{method}/heldout_tilts.tsv"
        for name, row in DATASETS.items()
        for method in (CORRUPTED, *row.methods)
    ]


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
        for method in (CORRUPTED, *row.methods)
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
        "--pipeline-config-json", CFG.science_json(),
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


def _plan_file(wildcards):
    """The slab plan's path (after the plan_slabs checkpoint ran)."""
    return checkpoints.plan_slabs.get(run=wildcards.run, dataset=wildcards.dataset).output.plan


def slab_init_model(wildcards):
    """fit_slab's starting weights: the seed's, or (chain) the neighbour's towards the seed slab."""
    plan_file = f"{_cn_dir(wildcards)}/slabs.json"
    if CFG.cn.schedule == "seed":  # no need to wait for the plan
        return str(init_model_path(plan_file, int(wildcards.slab), schedule="seed"))
    plan = read_slab_plan(_plan_file(wildcards)).plan
    return str(init_model_path(plan_file, int(wildcards.slab), schedule=CFG.cn.schedule, plan=plan))


def slab_outputs(wildcards):
    """Every slab's tile store and record (stitch_slabs' inputs; reads the checkpoint's plan).

    The paths follow the plan's folder (cryo-pipeline stitch-slabs --plan derives the same ones),
    so the shell command names only the plan, which exists in a dry run before the checkpoint ran.
    """
    plan_file = _plan_file(wildcards)
    slabs = [slab_paths(plan_file, i) for i in range(read_slab_plan(plan_file).n_slabs)]
    return {
        "tiles": [str(slab.tiles) for slab in slabs],
        "meta": [str(slab.record) for slab in slabs],
    }


# --- RELION-5 hand-off: one tomograms.star per correcting method --------------------------------
def _relion_rows(method):
    return [row for row in DATASETS.values() if method in row.methods]


def relion_stars(wildcards=None):
    """The targets of all: results/<run>/relion/tomograms_<method>.star per correcting method the sheet runs."""
    return [f"results/{RUN}/relion/tomograms_{m}.star" for m in CORRECTED_METHODS if _relion_rows(m)]


def relion_volumes(wildcards):
    """export_relion's inputs: the method's volume of every dataset that runs it."""
    return [f"results/{wildcards.run}/{row.dataset}/{wildcards.method}/volume.mrc"
            for row in _relion_rows(wildcards.method)]


def relion_arguments(wildcards, input):
    """--dataset-json/--volume pairs: each dataset's projection for export_relion and its volume."""
    import shlex

    rows = _relion_rows(wildcards.method)
    return " ".join(f"--dataset-json {shlex.quote(row_json('export_relion', _row_of(row)))} --volume {shlex.quote(v)}"
                    for row, v in zip(rows, input.volumes, strict=True))


def _row_of(row):
    return row.with_fetched_paths(FETCH_ROOT)
