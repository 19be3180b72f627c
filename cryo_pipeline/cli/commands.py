"""Subcommands: flags → stage config → ``stages.<name>.run``. Thin on purpose.

Stage modules are imported inside each handler so ``cryo-pipeline --help`` and the
light commands do not pay for importing torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryo_pipeline.config.execution import ExecutionConfig
from cryo_pipeline.config.methods import CRYOGEN, TRAINED_METHODS
from cryo_pipeline.config.pipeline import parse_stage_config
from cryo_pipeline.config.projection import Projection, parse_config, parse_row


def _dataset(args: argparse.Namespace, rule: str) -> Projection:
    """The sheet row of ``--dataset-json`` as ``rule``'s stage sees it."""
    return parse_row(args.dataset_json, rule)


def _config(args: argparse.Namespace, rule: str) -> Projection | None:
    """The config section of ``--config-json`` (empty = defaults) as ``rule``'s stage sees it."""
    return parse_config(args.config_json, rule)


def _execution(args: argparse.Namespace) -> ExecutionConfig:
    """The run-time settings of ``--execution-json`` (empty = defaults)."""
    return parse_stage_config(ExecutionConfig, args.execution_json, source="--execution-json")


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-json", required=True,
                        help="the dataset's sheet row as JSON: the columns this command reads, or the whole row")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-json", default="",
                        help="the stage's config section as JSON: the keys it reads, or the whole section "
                             "(empty = defaults)")


def _add_execution(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--execution-json", default="",
                        help="the execution: section as JSON (device, Dask cluster; empty = defaults)")


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


# --- simulate-volume -------------------------------------------------------------------
def _simulate_args(p: argparse.ArgumentParser) -> None:
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--out", required=True, type=Path, help="ground-truth MRC to write")


def _simulate(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import simulate_volume

    cfg = _config(args, "simulate_volume")
    simulate_volume.run(dataset=_dataset(args, "simulate_volume"), cfg=cfg, out=args.out)


# --- apply-fourier-wedge ---------------------------------------------------------------
def _wedge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--volume", required=True, type=Path, help="volume MRC (the ground truth)")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--out", required=True, type=Path, help="wedge-corrupted MRC to write")


def _wedge(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import apply_fourier_wedge

    cfg = _config(args, "apply_fourier_wedge")
    apply_fourier_wedge.run(volume_path=args.volume, dataset=_dataset(args, "apply_fourier_wedge"), cfg=cfg, out=args.out)


# --- project-tilt-series ---------------------------------------------------------------
def _project_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--volume", required=True, type=Path, help="volume MRC to project")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--out", required=True, type=Path, help="tilt-series MRC to write (n_tilts, y, x)")
    p.add_argument("--angles-out", required=True, type=Path, help=".tlt file to write")


def _project(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import project_tilt_series

    cfg = _config(args, "project_tilt_series")
    project_tilt_series.run(
        volume_path=args.volume, dataset=_dataset(args, "project_tilt_series"), cfg=cfg, out=args.out, angles_out=args.angles_out
    )


# --- reconstruct-wbp -------------------------------------------------------------------
def _wbp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tilt-series", required=True, type=Path, help="aligned tilt series MRC (n_tilts, y, x)")
    p.add_argument("--angles", required=True, type=Path, help=".tlt/.rawtlt/.mdoc with one angle per image")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--reference-volume", default=None, help="MRC whose z size sets the thickness (optional)")
    p.add_argument("--out", required=True, type=Path, help="reconstructed MRC to write")


def _wbp(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import reconstruct_wbp

    cfg = _config(args, "reconstruct_wbp")
    reconstruct_wbp.run(
        tilt_series_path=args.tilt_series,
        angles_path=args.angles,
        dataset=_dataset(args, "reconstruct_wbp"),
        cfg=cfg,
        out=args.out,
        reference_volume_path=_optional_path(args.reference_volume),
    )


# --- evaluate --------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--volume", required=True, type=Path, help="the method's output MRC")
    p.add_argument("--method", required=True, help="method name for the table (corrupted, wbp, ...)")
    p.add_argument("--ground-truth", default=None, help="ground-truth MRC (synthetic data)")
    p.add_argument("--meta", default=None, help="the method's .json record (runtime, device)")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--out", required=True, type=Path, help="one-row metrics TSV to write")
    p.add_argument("--curves-out", required=True, type=Path, help="FSC curves JSON to write")
    from cryo_pipeline.cli.validation_commands import add_evaluate_validation_args

    add_evaluate_validation_args(p)


def _evaluate(args: argparse.Namespace) -> None:
    from cryo_pipeline.cli.validation_commands import evaluate_validation_inputs
    from cryo_pipeline.stages import evaluate

    cfg = _config(args, "evaluate")
    evaluate.run(
        volume_path=args.volume,
        dataset=_dataset(args, "evaluate"),
        method=args.method,
        cfg=cfg,
        out=args.out,
        curves_out=args.curves_out,
        ground_truth_path=_optional_path(args.ground_truth),
        meta_path=_optional_path(args.meta),
        validation=evaluate_validation_inputs(args),
        heldout_out=_optional_path(args.heldout_out),
    )


# --- collect-metrics -------------------------------------------------------------------
def _collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", required=True, nargs="+", type=Path, help="one-row metric TSVs")
    p.add_argument("--out", required=True, type=Path, help="combined metrics.tsv to write")
    p.add_argument("--heldout-inputs", nargs="*", default=[], type=Path, help="held-out-tilt side tables")
    p.add_argument("--heldout-out", default=None, type=Path, help="combined heldout_tilts.tsv to write")


def _collect(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import collect_metrics

    collect_metrics.run(inputs=args.inputs, out=args.out, heldout_inputs=args.heldout_inputs,
                        heldout_out=args.heldout_out)


# --- report ----------------------------------------------------------------------------
def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", type=Path, default=None,
                   help="results/<run>/metrics.tsv; leave out for a partial report built from the "
                        "--expected-tables that exist (after a failed run)")
    p.add_argument("--run-name", required=True, help="run name shown in the report")
    p.add_argument("--pipeline-config-json", default="", help="resolved pipeline config to show")
    p.add_argument("--preprocess", nargs="*", default=[], type=Path, help="extraction records (subtomos.json)")
    p.add_argument("--losses", nargs="*", default=[], type=Path, help="loss tables of trained methods (losses.tsv)")
    p.add_argument("--expected-tables", nargs="*", default=[], type=Path,
                   help="every <dataset>/<method>/metrics.tsv the sheet asks for; missing ones are listed as failed")
    p.add_argument("--sheet", type=Path, default=None, help="dataset sheet (facts, ablation sweeps)")
    p.add_argument("--logs-dir", type=Path, default=None, help="logs/<run>: logs of failed jobs")
    p.add_argument("--benchmarks-dir", type=Path, default=None, help="benchmarks/<run>: Snakemake benchmark files")
    p.add_argument("--sweep-tsv", type=Path, default=None, help="sweep summary table to write")
    p.add_argument("--sweep-png", type=Path, default=None, help="sweep summary plot to write")
    p.add_argument("--workflow-log", default=None, help="Snakemake's log of a failed run (partial report)")
    p.add_argument("--out", required=True, type=Path, help="report.html to write")


def _report(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import report

    if args.metrics is None and not args.expected_tables:
        raise ValueError("report needs --metrics, or --expected-tables for a partial report")
    config = json.loads(args.pipeline_config_json) if args.pipeline_config_json else None
    report.run(
        metrics_tsv=args.metrics,
        out_html=args.out,
        run_name=args.run_name,
        config=config,
        preprocess_records=args.preprocess,
        loss_tables=args.losses,
        expected_tables=args.expected_tables,
        sheet=args.sheet,
        logs_dir=args.logs_dir,
        benchmarks_dir=args.benchmarks_dir,
        sweep_tsv=args.sweep_tsv,
        sweep_png=args.sweep_png,
        workflow_log=args.workflow_log,
    )


# --- validate-config / export-schema ---------------------------------------------------
def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="config YAML")


def _validate(args: argparse.Namespace) -> None:
    from cryo_pipeline.config.pipeline import load_pipeline_config
    from cryo_pipeline.io.sheet import read_dataset_sheet

    cfg = load_pipeline_config(args.config)
    rows = read_dataset_sheet(Path(cfg.datasets))
    print(f"{args.config}: ok; {len(rows)} dataset(s) in {cfg.datasets}: {', '.join(r.dataset for r in rows)}")


def _schema_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("workflow/schemas/config.schema.yaml"))


def _schema(args: argparse.Namespace) -> None:
    from cryo_pipeline.config.schema import render_schema_yaml
    from cryo_pipeline.io.atomic import atomic_write_text

    atomic_write_text(args.out, render_schema_yaml())


COMMANDS = {
    "simulate-volume": ("Build a synthetic ground truth (phantom or real map).", _simulate_args, _simulate),
    "apply-fourier-wedge": ("Zero the missing wedge of a volume (CryoGEN protocol).", _wedge_args, _wedge),
    "project-tilt-series": ("Project a volume to a noisy tilt series (CN protocol).", _project_args, _project),
    "reconstruct-wbp": ("Weighted back-projection of a tilt series.", _wbp_args, _wbp),
    "evaluate": ("Score one volume against the ground truth.", _evaluate_args, _evaluate),
    "collect-metrics": ("Combine per-method metric rows into metrics.tsv.", _collect_args, _collect),
    "report": ("Render the self-contained HTML report.", _report_args, _report),
    "validate-config": ("Check config.yaml and the dataset sheet without running anything.", _validate_args, _validate),
    "export-schema": ("Write the config JSON schema generated from the stage models.", _schema_args, _schema),
}


# --- preprocessing: bin-tomogram, deconvolve-tomogram, make-mask, extract-subtomos -----
def _tomogram_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tomogram", required=True, type=Path, help="tomogram MRC")
    _add_dataset(p)
    _add_config(p)


def _bin_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--out", required=True, type=Path, help="binned MRC to write")


def _bin(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import bin_tomogram

    cfg = _config(args, "bin_tomogram")
    bin_tomogram.run(tomogram_path=args.tomogram, dataset=_dataset(args, "bin_tomogram"), cfg=cfg, out=args.out)


def _deconvolve_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--out", required=True, type=Path, help="deconvolved MRC to write")


def _deconvolve(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import deconvolve_tomogram

    cfg = _config(args, "deconvolve_tomogram")
    deconvolve_tomogram.run(tomogram_path=args.tomogram, dataset=_dataset(args, "deconvolve_tomogram"), cfg=cfg, out=args.out)


def _mask_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--user-mask", default=None, help="MRC mask to intersect with (optional)")
    p.add_argument("--out", required=True, type=Path, help="uint8 mask MRC to write")


def _mask(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import make_mask

    cfg = _config(args, "make_mask")
    make_mask.run(
        tomogram_path=args.tomogram,
        dataset=_dataset(args, "make_mask"),
        cfg=cfg,
        out=args.out,
        user_mask_path=_optional_path(args.user_mask),
    )


def _extract_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--mask", required=True, type=Path, help="mask MRC from make-mask")
    p.add_argument("--out-store", required=True, type=Path, help="Zarr v3 store to write")
    p.add_argument("--out-table", required=True, type=Path, help="TSV of cube centres to write")


def _extract(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import extract_subtomos

    cfg = _config(args, "extract_subtomos")
    extract_subtomos.run(
        tomogram_path=args.tomogram,
        mask_path=args.mask,
        dataset=_dataset(args, "extract_subtomos"),
        cfg=cfg,
        out_store=args.out_store,
        out_table=args.out_table,
    )


COMMANDS.update(
    {
        "bin-tomogram": ("Bin a tomogram by Fourier cropping (anti-aliased).", _bin_args, _bin),
        "deconvolve-tomogram": ("CTF-deconvolve a tomogram (IsoNet-equivalent filter).", _deconvolve_args, _deconvolve),
        "make-mask": ("Density mask of a tomogram (IsoNet-style).", _mask_args, _mask),
        "extract-subtomos": ("Extract subtomograms inside the mask into a Zarr store.", _extract_args, _extract),
    }
)


# --- train-cryogen / predict-cryogen ---------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, type=Path, help="subtomos.zarr from extract-subtomos")
    p.add_argument("--table", default=None, help="subtomos.tsv (train/val split); optional")
    p.add_argument("--method", choices=TRAINED_METHODS, default=CRYOGEN, help="training objective")
    _add_dataset(p)
    _add_config(p)
    _add_execution(p)
    p.add_argument("--out-model", required=True, type=Path, help="model file to write")
    p.add_argument("--out-losses", required=True, type=Path, help="loss table (TSV) to write")
    p.add_argument("--checkpoint-dir", required=True, type=Path, help="epoch checkpoints (resume from here)")


def _train(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import train_cryogen
    from cryo_pipeline.training.distributed import relaunch_on_every_gpu

    cfg, dataset, execution = _config(args, "train_cryogen"), _dataset(args, "train_cryogen"), _execution(args)
    if relaunch_on_every_gpu(args.argv, device=execution.device):  # several GPUs: one process each, done
        return
    train_cryogen.run(store=args.store, table=_optional_path(args.table), dataset=dataset, cfg=cfg,
                      method=args.method, out_model=args.out_model, out_losses=args.out_losses,
                      checkpoint_dir=args.checkpoint_dir, device=execution.device)


def _predict_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--model", required=True, type=Path, help="model file from train-cryogen")
    _add_execution(p)
    p.add_argument("--out", required=True, type=Path, help="corrected MRC to write")
    p.add_argument("--out-zarr", required=True, type=Path, help="corrected Zarr store to write")


def _predict(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import predict_cryogen

    predict_cryogen.run(tomogram_path=args.tomogram, model_path=args.model,
                        dataset=_dataset(args, "predict_cryogen"), cfg=_config(args, "predict_cryogen"),
                        out=args.out, out_zarr=args.out_zarr, device=_execution(args).device)


COMMANDS.update(
    {
        "train-cryogen": ("Train the CryoGEN generator (or the IsoNet-style baseline).", _train_args, _train),
        "predict-cryogen": ("Tiled inference with a trained generator.", _predict_args, _predict),
    }
)


# --- predict-cryogen-tiles / stitch-tiles (split inference: N jobs + a Dask stitch) ----
def _predict_tiles_args(p: argparse.ArgumentParser) -> None:
    _tomogram_args(p)
    p.add_argument("--model", required=True, type=Path, help="model file from train-cryogen")
    p.add_argument("--group", required=True, type=int, help="which group of tiles, 0 <= G < N")
    p.add_argument("--n-groups", required=True, type=int, help="number of groups N the tiles are split into")
    _add_execution(p)
    p.add_argument("--out-tiles", required=True, type=Path, help="tile store (Zarr) to write; record beside it")


def _predict_tiles(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import predict_cryogen

    predict_cryogen.run_tile_group(tomogram_path=args.tomogram, model_path=args.model,
                                   dataset=_dataset(args, "predict_cryogen_tiles"),
                                   cfg=_config(args, "predict_cryogen_tiles"), group=args.group,
                                   n_groups=args.n_groups, out_tiles=args.out_tiles, device=_execution(args).device)


def _stitch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile-stores", required=True, nargs="+", type=Path, help="tile stores of all groups")
    p.add_argument("--meta", nargs="*", default=[], type=Path, help="the groups' .json records (runtime, device)")
    p.add_argument("--out", required=True, type=Path, help="stitched MRC to write")
    p.add_argument("--out-zarr", required=True, type=Path, help="stitched Zarr store to write")
    p.add_argument("--scheduler-address", default="", help="running Dask scheduler; empty = "
                   "--threads threads in this process")
    p.add_argument("--memory-limit-mb", type=int, default=0,
                   help="job memory in MB (sizes the stitch's tasks); 0 = default")
    _add_execution(p)


def _stitch(args: argparse.Namespace) -> None:
    import os

    from cryo_pipeline.stages import stitch_tiles

    stitch_tiles.run(tile_stores=args.tile_stores, out=args.out, out_zarr=args.out_zarr,
                     threads=args.threads if args.threads > 0 else (os.cpu_count() or 1),
                     scheduler_address=args.scheduler_address or None, meta_paths=args.meta,
                     memory_limit_mb=args.memory_limit_mb or None, execution=_execution(args))


COMMANDS.update(
    {
        "predict-cryogen-tiles": ("Predict one group of tiles (split inference) into a tile store.",
                                  _predict_tiles_args, _predict_tiles),
        "stitch-tiles": ("Blend the tile stores of parallel jobs into one volume (Zarr, MRC, OME-Zarr).", _stitch_args, _stitch),
    }
)


# --- fetch-dataset ---------------------------------------------------------------------
def _fetch_args(p: argparse.ArgumentParser) -> None:
    _add_dataset(p)
    p.add_argument("--role", choices=("source", "angles"), default="source", help="which file of the row to fetch")
    p.add_argument("--out", required=True, type=Path, help="local file to write (resources/<dataset>/<name>)")
    p.add_argument("--record", default=None, help="JSON record to write (default: <out>.fetch.json)")
    p.add_argument("--retries", type=int, default=3, help="retries after a dropped connection or HTTP 5xx")
    p.add_argument("--timeout-s", type=float, default=60.0, help="network time-out per read (seconds)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def _fetch(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import fetch_dataset

    fetch_dataset.run(dataset=_dataset(args, "fetch_dataset"), role=args.role, out=args.out, record=_optional_path(args.record),
                      retries=args.retries, timeout_s=args.timeout_s, progress=not args.no_progress)


COMMANDS.update(
    {
        "fetch-dataset": ("Download a file of an EMPIAR (URL) dataset: resumable, checksummed.", _fetch_args, _fetch),
    }
)


# --- plan-slabs / fit-slab-seed / fit-slab / stitch-slabs (CN: coordinate networks per y-slab) ----
def _cn_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tilt-series", required=True, type=Path, help="aligned tilt series MRC (n_tilts, y, x)")
    _add_dataset(p)
    _add_config(p)


def _plan_slabs_args(p: argparse.ArgumentParser) -> None:
    _cn_common_args(p)
    p.add_argument("--angles", required=True, type=Path, help=".tlt/.rawtlt/.mdoc with one angle per image")
    p.add_argument("--reference-volume", default=None, help="MRC whose z size sets the thickness (optional)")
    p.add_argument("--out", required=True, type=Path, help="slab plan (JSON) to write")


def _plan_slabs(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import plan_slabs

    cfg = _config(args, "plan_slabs")
    plan_slabs.run(tilt_series_path=args.tilt_series, angles_path=args.angles, dataset=_dataset(args, "plan_slabs"),
                   cfg=cfg,
                   out=args.out, reference_volume_path=_optional_path(args.reference_volume))


def _fit_seed_args(p: argparse.ArgumentParser) -> None:
    _cn_common_args(p)
    p.add_argument("--plan", required=True, type=Path, help="slab plan from plan-slabs")
    p.add_argument("--out-model", required=True, type=Path, help="seed network weights to write; record beside it")
    _add_execution(p)


def _fit_seed(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import fit_slab

    fit_slab.run_seed(tilt_series_path=args.tilt_series, plan_path=args.plan,
                      dataset=_dataset(args, "fit_slab_seed"), cfg=_config(args, "fit_slab_seed"),
                      out_model=args.out_model, device=_execution(args).device)


def _fit_slab_args(p: argparse.ArgumentParser) -> None:
    _cn_common_args(p)
    p.add_argument("--plan", required=True, type=Path, help="slab plan from plan-slabs")
    p.add_argument("--slab", required=True, type=int, help="slab index, 0 <= i < n_slabs")
    p.add_argument("--init-model", required=True, type=Path, help="weights to start from (seed or neighbour)")
    p.add_argument("--seed-meta", default=None, help="the seed fit's .json record (for the runtime)")
    p.add_argument("--out-tiles", required=True, type=Path, help="the slab's tile store (Zarr) to write")
    p.add_argument("--out-model", required=True, type=Path, help="the slab's weights to write; record beside it")
    _add_execution(p)


def _fit_slab(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import fit_slab

    fit_slab.run_slab(tilt_series_path=args.tilt_series, plan_path=args.plan, init_model=args.init_model,
                      seed_meta=_optional_path(args.seed_meta), slab=args.slab, dataset=_dataset(args, "fit_slab"),
                      cfg=_config(args, "fit_slab"), out_tiles=args.out_tiles, out_model=args.out_model,
                      device=_execution(args).device)


def _stitch_slabs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", required=True, type=Path, help="slab plan from plan-slabs; the slabs are read from "
                   "<plan folder>/slabs/slab_<i>.zarr with their .json records")
    p.add_argument("--out", required=True, type=Path, help="stitched MRC to write")
    p.add_argument("--out-zarr", required=True, type=Path, help="stitched Zarr store to write")
    p.add_argument("--scheduler-address", default="",
                   help="running Dask scheduler (overrides execution.stitch_cluster)")
    p.add_argument("--memory-limit-mb", type=int, default=0,
                   help="job memory in MB (sizes the stitch's tasks); 0 = default")
    _add_config(p)
    _add_execution(p)


def _stitch_slabs(args: argparse.Namespace) -> None:
    import os

    from cryo_pipeline.io.slab_plan import read_slab_plan, slab_paths
    from cryo_pipeline.stages import stitch_tiles

    slabs = [slab_paths(args.plan, i) for i in range(read_slab_plan(args.plan).n_slabs)]
    stitch_tiles.run(tile_stores=[s.tiles for s in slabs], out=args.out, out_zarr=args.out_zarr,
                     threads=args.threads if args.threads > 0 else (os.cpu_count() or 1),
                     scheduler_address=args.scheduler_address or None, meta_paths=[s.record for s in slabs],
                     memory_limit_mb=args.memory_limit_mb or None, cfg=_config(args, "stitch_slabs"),
                     execution=_execution(args))


COMMANDS.update(
    {
        "plan-slabs": ("CN: plan the y-slabs of a tilt series (the checkpoint of the CN path).", _plan_slabs_args,
                       _plan_slabs),
        "fit-slab-seed": ("CN: fit the seed slab's coordinate network from random init.", _fit_seed_args, _fit_seed),
        "fit-slab": ("CN: fit one slab's coordinate network from learned init; write its tile store.",
                     _fit_slab_args, _fit_slab),
        "stitch-slabs": ("CN: blend the slabs' tile stores in y with Dask; Zarr, MRC and seam ratio.",
                         _stitch_slabs_args, _stitch_slabs),
    }
)


# --- real data where it lives: align-tilt-series, fetch-portal, export-relion ---------------
def _align_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tilt-series", required=True, type=Path, help="raw tilt series MRC (n_images, y, x)")
    p.add_argument("--angles", default=None, help=".tlt/.rawtlt/.mdoc (optional with an .aln or portal alignment)")
    p.add_argument("--alignment", default=None, help="IMOD .xf, AreTomo .aln or portal alignment_metadata.json")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--out", required=True, type=Path, help="aligned tilt series MRC to write (record beside it)")
    p.add_argument("--angles-out", required=True, type=Path, help=".tlt of the aligned images to write")


def _align(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import align_tilt_series

    align_tilt_series.run(tilt_series_path=args.tilt_series, angles_path=_optional_path(args.angles),
                          alignment_path=_optional_path(args.alignment),
                          dataset=parse_row(args.dataset_json, "align_tilt_series"),
                          cfg=_config(args, "align_tilt_series"), out=args.out, angles_out=args.angles_out)


def _portal_args(p: argparse.ArgumentParser) -> None:
    _add_dataset(p)
    p.add_argument("--folder", required=True, type=Path, help="resources/<dataset>: files and portal.json go here")


def _portal(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import fetch_portal

    fetch_portal.run(dataset=parse_row(args.dataset_json, "fetch_portal"), folder=args.folder, progress=False)


def _relion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-json", action="append", required=True, help="a dataset's sheet row (once per volume)")
    p.add_argument("--volume", action="append", required=True, type=Path, help="its corrected tomogram MRC")
    p.add_argument("--out", required=True, type=Path, help="tomograms.star to write")


def _relion(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import export_relion

    rows = [parse_row(text, "export_relion") for text in args.dataset_json]
    export_relion.run(datasets=rows, volumes=args.volume, out=args.out)


COMMANDS.update(
    {
        "align-tilt-series": ("Raw stack (+ tilt-axis angle or .xf/.aln/portal alignment) -> aligned, axis-on-y "
                              "tilt series.", _align_args, _align),
        "fetch-portal": ("Resolve a CryoET Data Portal id and download its files (resumable).", _portal_args,
                         _portal),
        "export-relion": ("Write a RELION-5 tomograms.star for corrected tomograms.", _relion_args, _relion),
    }
)
