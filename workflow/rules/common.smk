# Validation of config and dataset sheet, wildcard constraints, and the named helpers
# that rules use for inputs and params. No logic inside rules; no lambdas.
import re

from cryo_pipeline import __version__
from cryo_pipeline.config.dataset import IMPLEMENTED_METHODS
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
    return DATASETS[wildcards.dataset]


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
    if row.kind == "tomogram":
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
