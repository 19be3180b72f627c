"""What each rule's stage reads: its sheet columns and the keys of its config section.

A rule passes its command only these values (``workflow/rules/common.smk`` calls
:func:`cryo_pipeline.config.projection.row_json` / :func:`~cryo_pipeline.config.projection.config_json`),
so a value reaches a rule's ``params`` — and reruns its jobs when it changes — only if
the rule's stage reads it. The stage functions see the same projection
(:func:`cryo_pipeline.config.projection.reads`): reading a column or key that is not
declared here raises :class:`~cryo_pipeline.config.projection.UndeclaredRead`, so every
stage test checks these declarations.

Run-time settings (``execution:``) are never declared here: they never enter params.
The ``report`` rule shows the whole science config and reads the sheet file itself.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = ("*",)
"""``keys=ALL``: every key of the section (the stage reads the whole section)."""


@dataclass(frozen=True)
class Reads:
    """The sheet columns and config keys one rule's stage reads.

    Attributes
    ----------
    sheet : tuple of str
        Columns of the dataset sheet (:class:`cryo_pipeline.config.dataset.DatasetRow` fields).
    section : str or None
        The config section (a key of ``config.yaml``) the stage reads, if any.
    keys : tuple of str
        Keys of ``section`` it reads, or :data:`ALL`.
    """

    sheet: tuple[str, ...] = ()
    section: str | None = None
    keys: tuple[str, ...] = ()


_SIREN = ("width", "n_hidden_layers", "w0", "fourier_features", "fourier_scale", "nonnegative", "seed")
_FIT = ("loss", "tv_weight", "rows_per_step")
_PORTAL = Reads(sheet=("dataset", "source", "data_kind"))  # one stage, a rule per data_kind (their outputs differ)

STAGE_READS: dict[str, Reads] = {
    "fetch_dataset": Reads(sheet=("dataset", "kind", "source", "angles", "sha256")),
    "simulate_volume": Reads(sheet=("dataset", "kind", "source", "shape_px", "seed", "voxel_size_angstrom"),
                             section="simulate", keys=ALL),
    "apply_fourier_wedge": Reads(sheet=("dataset", "tilt_min_deg", "tilt_max_deg"), section="fourier_wedge",
                                 keys=ALL),
    "project_tilt_series": Reads(sheet=("dataset", "tilt_min_deg", "tilt_max_deg", "tilt_step_deg", "snr", "seed",
                                        "reference_tilt_min_deg", "reference_tilt_max_deg"),
                                 section="project", keys=ALL),
    "reconstruct_reference": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg",
                                          "reference_tilt_min_deg", "reference_tilt_max_deg"),
                                   section="reference", keys=ALL),
    "split_halves": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg")),
    "reconstruct_wbp": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg"),
                             section="wbp", keys=ALL),
    "bin_tomogram": Reads(sheet=("dataset", "voxel_size_angstrom"), section="bin", keys=ALL),
    "deconvolve_tomogram": Reads(sheet=("dataset", "voxel_size_angstrom", "voltage_kv", "cs_mm", "defocus_angstrom",
                                        "amplitude_contrast", "phase_shift_deg", "phase_flipped"),
                                 section="deconvolve", keys=ALL),
    "make_mask": Reads(sheet=("dataset", "voxel_size_angstrom"), section="mask", keys=ALL),
    "extract_subtomos": Reads(sheet=("dataset", "voxel_size_angstrom", "seed", "tilt_min_deg", "tilt_max_deg"),
                              section="extract", keys=ALL),
    "train_cryogen": Reads(sheet=("dataset", "tilt_min_deg", "tilt_max_deg"), section="train", keys=ALL),
    "predict_cryogen": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg"),
                             section="predict", keys=ALL),
    "predict_cryogen_tiles": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg"),
                                   section="predict", keys=ALL),
    "stitch_cryogen": Reads(),
    "plan_slabs": Reads(sheet=("dataset", "kind", "source", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg"),
                        section="cn",
                        keys=(*_SIREN, "slab_px", "params_per_voxel", "halo_px", "thickness_px", "schedule")),
    "fit_slab_seed": Reads(sheet=("dataset",), section="cn",
                           keys=(*_SIREN, *_FIT, "seed_window", "seed_iterations", "seed_lr_start", "seed_lr_end")),
    "fit_slab": Reads(sheet=("dataset",), section="cn",
                      keys=(*_SIREN, *_FIT, "schedule", "slab_optimizer", "slab_iterations", "slab_lr_start",
                            "slab_lr_end", "slab_rows_per_step", "keep_measured")),
    "stitch_slabs": Reads(section="stitch", keys=ALL),
    "evaluate": Reads(sheet=("dataset", "kind", "data_kind", "corruption", "angles", "tilt_min_deg", "tilt_max_deg",
                             "tilt_step_deg"), section="evaluate", keys=ALL),
    "collect_metrics": Reads(),
    "align_tilt_series": Reads(sheet=("dataset", "voxel_size_angstrom", "tilt_axis_deg"), section="align", keys=ALL),
    "fetch_portal": _PORTAL,
    "fetch_portal_tiltseries": _PORTAL,
    "fetch_portal_tomogram": _PORTAL,
    "export_relion": Reads(sheet=("dataset", "voxel_size_angstrom", "voltage_kv", "cs_mm", "amplitude_contrast")),
}
"""Rule name → what its stage reads. A new rule, column or key: see README.md, Development."""
