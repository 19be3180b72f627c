"""Subcommands of the validation workflow (issue 12): reconstruct-reference, split-halves.

``evaluate`` and ``collect-metrics`` take their validation inputs through the options
added here (:func:`add_evaluate_validation_args`, :func:`evaluate_validation_inputs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryo_pipeline.cli.commands import _add_config, _add_dataset, _config, _dataset, _optional_path


# --- reconstruct-reference ----------------------------------------------------------------
def _reference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tilt-series", required=True, type=Path, help="the whole tilt series MRC (all tilts)")
    p.add_argument("--angles", required=True, type=Path, help=".tlt/.rawtlt/.mdoc with one angle per image")
    _add_dataset(p)
    _add_config(p)
    p.add_argument("--grid-volume", default=None, help="MRC whose z size the reference takes (the dataset's WBP)")
    p.add_argument("--out", required=True, type=Path, help="reference MRC to write (+ .json record beside it)")


def _reference(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import reconstruct_reference

    reconstruct_reference.run(tilt_series_path=args.tilt_series, angles_path=args.angles,
                              dataset=_dataset(args, "reconstruct_reference"),
                              cfg=_config(args, "reconstruct_reference"), out=args.out,
                              grid_volume_path=_optional_path(args.grid_volume))


# --- split-halves -------------------------------------------------------------------------
def _halves_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tilt-series", required=True, type=Path, help="tilt series MRC")
    p.add_argument("--angles", required=True, type=Path, help=".tlt/.rawtlt/.mdoc with one angle per image")
    _add_dataset(p)
    for half in ("even", "odd"):
        p.add_argument(f"--out-{half}", required=True, type=Path, help=f"{half} half's tilt series MRC to write")
        p.add_argument(f"--angles-{half}-out", required=True, type=Path, help=f"{half} half's .tlt to write")


def _halves(args: argparse.Namespace) -> None:
    from cryo_pipeline.stages import split_halves

    split_halves.run(tilt_series_path=args.tilt_series, angles_path=args.angles,
                     dataset=_dataset(args, "split_halves"), out_even=args.out_even, out_odd=args.out_odd,
                     angles_even_out=args.angles_even_out, angles_odd_out=args.angles_odd_out)


# --- evaluate's validation options --------------------------------------------------------
def add_evaluate_validation_args(p: argparse.ArgumentParser) -> None:
    """Optional inputs of the no-ground-truth scores (empty values = that part is skipped)."""
    p.add_argument("--reference", default=None, help="full-range reference MRC (its .json record beside it)")
    p.add_argument("--tilt-series", default=None, help="the whole tilt series (held-out images)")
    p.add_argument("--angles", default=None, help="its angles")
    p.add_argument("--half-even", default=None, help="the method's output on the even half")
    p.add_argument("--half-odd", default=None, help="the method's output on the odd half")
    p.add_argument("--method-input", default=None, help="the volume the method was given (fidelity)")
    p.add_argument("--heldout-out", default=None, help="held-out-tilt side table TSV to write")


def evaluate_validation_inputs(args: argparse.Namespace):
    """The :class:`~cryo_pipeline.stages.evaluate.ValidationInputs` of the options above."""
    from cryo_pipeline.stages.evaluate import ValidationInputs

    even, odd = _optional_path(args.half_even), _optional_path(args.half_odd)
    return ValidationInputs(reference_path=_optional_path(args.reference),
                            tilt_series_path=_optional_path(args.tilt_series),
                            angles_path=_optional_path(args.angles),
                            half_paths=(even, odd) if even and odd else None,
                            method_input_path=_optional_path(args.method_input))


VALIDATION_COMMANDS = {
    "reconstruct-reference": ("Full-range reference from every tilt of the reference range (WBP or SIRT).",
                              _reference_args, _reference),
    "split-halves": ("Split a tilt series' working tilts into even and odd halves.", _halves_args, _halves),
}
