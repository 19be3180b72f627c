"""One row of the dataset sheet (``config/datasets.tsv``), validated.

Columns (file contract): ``dataset, kind, source, voxel_size_angstrom, tilt_min_deg,
tilt_max_deg, tilt_step_deg, corruption, snr, methods`` and optional ``angles``,
``seed``, ``shape_px``, ``mask``, the CTF columns, for a raw tilt series ``tilt_axis_deg``
and ``alignment``, and, for kinds ``empiar``/``portal``, ``data_kind`` (and ``sha256`` for
``empiar``). Unknown columns are errors. Relative paths resolve against the sheet's
folder (done by :func:`cryo_pipeline.io.sheet.read_dataset_sheet`).

An ``empiar`` row names a file to download (``source``: an http(s) or file:// URL, or a
local path; ``angles`` likewise) and what that file is (``data_kind``: ``tiltseries`` or
``tomogram``). The ``fetch_dataset`` rule puts the files in ``resources/<dataset>/``;
from then on the row is treated exactly like a row of kind ``data_kind``
(:attr:`DatasetRow.effective_kind`, :meth:`DatasetRow.with_fetched_paths`).

A ``portal`` row names a CryoET Data Portal entity (``source``: ``run:<id>``,
``tiltseries:<id>`` or ``tomogram:<id>``); the ``fetch_portal`` rule resolves it with the
portal's client and downloads its files to fixed names in ``resources/<dataset>/``
(:meth:`DatasetRow.portal_files`): a raw tilt series with its angles and alignment, or a
tomogram.

A tilt series whose axis is not on y (``tilt_axis_deg``) or that is not aligned yet
(``alignment``: IMOD ``.xf``, AreTomo ``.aln``, portal ``.json``) goes through the
``align_tilt_series`` rule first (:attr:`DatasetRow.needs_alignment`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryo_pipeline.config.locations import check_fetch_location, fetch_file_name
from cryo_pipeline.config.methods import METHODS, TILT_SERIES_METHODS, TRAINED_METHODS

KINDS = ("synthetic", "tiltseries", "tomogram", "empiar", "portal")
CORRUPTIONS = ("fourier", "tiltseries")
PHANTOM_NAMES = ("hollow_sphere", "triangular_prism", "mixed_shapes", "spheres_set", "shapes_set")
MAP_SUFFIXES = (".mrc", ".map", ".rec", ".mrcs", ".st", ".ali")
ANGLE_SUFFIXES = (".tlt", ".rawtlt", ".mdoc")
ALIGNMENT_SUFFIXES = (".xf", ".aln", ".json")
PORTAL_FILES = {"tiltseries": {"source": "tilt_series.mrc", "angles": "angles.tlt", "alignment": "alignment.json"},
                "tomogram": {"source": "tomogram.mrc"}}
_PORTAL_SOURCE = r"^\s*(?i:run|tiltseries|tomogram)\s*:\s*\d+\s*$"
FETCH_ROOT = "resources"


def parse_shape_px(text: str | int | None) -> tuple[int, int, int] | None:
    """``"64"`` → (64, 64, 64); ``"32x64x64"`` → (32, 64, 64) in z, y, x; empty → None."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape_px {text!r} must be one integer or three joined by 'x' (z x y x x)") from None
    if len(sizes) == 1:
        sizes = sizes * 3
    if len(sizes) != 3 or min(sizes) < 8 or max(sizes) > 4096:
        raise ValueError(f"shape_px {text!r} must give 3 sizes between 8 and 4096 voxels")
    return sizes  # type: ignore[return-value]


MIN_TILTS_PER_HALF = 4
"""A half with fewer tilts than this cannot give a tomogram worth comparing (``halves``)."""
_ANGLE_TOLERANCE_DEG = 1e-2  # as ops.tilts: an angle this close to a bound is inside


def check_alternate_halves(angles_deg, row: DatasetRow, *, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and column halves when a half of the working tilts has < 4.

    Halves alternate along the working tilts (:func:`cryo_pipeline.ops.tilts.alternate_halves`),
    so the smaller one holds ``n // 2`` of the ``n`` working tilts.
    """
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    inside = (angles >= row.tilt_min_deg - _ANGLE_TOLERANCE_DEG) & (angles <= row.tilt_max_deg + _ANGLE_TOLERANCE_DEG)
    smaller = int(np.count_nonzero(inside)) // 2
    if smaller < MIN_TILTS_PER_HALF:
        raise ValueError(
            f"{where}: column halves: a half has only {smaller} tilt(s); half maps need at least "
            f"{MIN_TILTS_PER_HALF} per half (widen the tilt range or drop halves)"
        )


class DatasetRow(BaseModel):
    """A dataset: what to load or simulate, its geometry and the methods to run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Unique name; used in paths.")
    kind: Literal["synthetic", "tiltseries", "tomogram", "empiar", "portal"]
    source: str = Field(min_length=1, description="Phantom name, or a path to a map / tilt series / tomogram, or a URL.")
    voxel_size_angstrom: float | None = Field(None, gt=0.0, le=1000.0)
    tilt_min_deg: float = Field(ge=-90.0, le=90.0)
    tilt_max_deg: float = Field(ge=-90.0, le=90.0)
    tilt_step_deg: float | None = Field(None, gt=0.0, le=30.0)
    corruption: Literal["fourier", "tiltseries"] | None = None
    snr: float | None = Field(None, gt=0.0, description="Signal-to-noise variance ratio; empty = noiseless.")
    methods: tuple[Literal[METHODS], ...] = ()
    angles: str | None = Field(None, description="Path to a .tlt/.rawtlt/.mdoc file.")
    seed: int = Field(0, ge=0)
    shape_px: tuple[int, int, int] | None = Field(None, description="Phantom size: '64' or 'ZxYxX'.")
    mask: str | None = Field(None, description="Optional user mask (MRC), intersected with the density mask.")
    voltage_kv: float | None = Field(None, gt=0.0, le=1000.0, description="Acceleration voltage (kV).")
    cs_mm: float | None = Field(None, ge=0.0, le=20.0, description="Spherical aberration (mm).")
    defocus_angstrom: float | None = Field(
        None, ge=-1e6, le=1e6, description="Defocus (Å), underfocus positive; empty = no CTF deconvolution."
    )
    amplitude_contrast: float = Field(0.07, ge=0.0, lt=1.0, description="Amplitude contrast fraction.")
    phase_shift_deg: float = Field(0.0, ge=-180.0, le=180.0, description="Phase-plate phase shift (degrees).")
    phase_flipped: bool = Field(False, description="The tomogram was reconstructed from phase-flipped images.")
    data_kind: Literal["tiltseries", "tomogram"] | None = Field(
        None, description="Kinds empiar and portal: what the fetched source is (a tilt series or a tomogram)."
    )
    tilt_axis_deg: float | None = Field(
        None, ge=-180.0, le=180.0,
        description="Tilt-axis angle in the raw images, counter-clockwise from y (IMOD/AreTomo); the images are "
                    "rotated so that it lies on y. Empty = already on y.")
    alignment: str | None = Field(
        None, description="Alignment of the raw tilt series: IMOD .xf, AreTomo .aln or CryoET Data Portal .json.")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="Kind empiar only: sha256 of the source, checked on download."
    )
    reference_tilt_min_deg: float | None = Field(
        None, ge=-90.0, le=90.0,
        description="Tilt series: lower end of the range a full-range reference is reconstructed from "
        "(must be <= tilt_min_deg); empty = no reference.",
    )
    reference_tilt_max_deg: float | None = Field(
        None, ge=-90.0, le=90.0, description="Tilt series: upper end of the reference range (>= tilt_max_deg)."
    )
    halves: Literal["alternate", "frames"] | None = Field(
        None,
        description="Tilt series: run every method on two halves too (alternate = even/odd tilts by angle; "
        "frames = the even/odd frame stacks in source_even/source_odd) for the half-map FSC.",
    )
    source_even: str | None = Field(None, description="halves: frames — tilt series from the even movie frames.")
    source_odd: str | None = Field(None, description="halves: frames — tilt series from the odd movie frames.")

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, value):
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(m.strip() for m in value.split(",") if m.strip())
        return value

    @field_validator("shape_px", mode="before")
    @classmethod
    def _parse_shape(cls, value):
        if isinstance(value, (tuple, list)):
            return value
        return parse_shape_px(value)

    @model_validator(mode="after")
    def _check_consistency(self):
        name = self.dataset
        if self.tilt_min_deg >= self.tilt_max_deg:
            raise ValueError(
                f"dataset {name}: tilt_min_deg ({self.tilt_min_deg}) must be < tilt_max_deg ({self.tilt_max_deg})"
            )
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"dataset {name}: methods {','.join(self.methods)} repeat a method")
        if self.kind == "empiar":
            self._check_empiar()
        elif self.kind == "portal":
            self._check_portal()
        else:
            for column, kinds in (("data_kind", "kinds 'empiar'/'portal'"), ("sha256", "kind 'empiar'")):
                if getattr(self, column) is not None:
                    raise ValueError(f"dataset {name}: column {column} applies to {kinds} only (kind is {self.kind})")
        self._check_alignment_columns()
        if self.kind == "synthetic":
            if self.corruption is None:
                raise ValueError(f"dataset {name}: synthetic datasets need corruption 'fourier' or 'tiltseries'")
            if self.source not in PHANTOM_NAMES and not self.source.lower().endswith(MAP_SUFFIXES):
                raise ValueError(
                    f"dataset {name}: source {self.source!r} is neither a phantom ({', '.join(PHANTOM_NAMES)}) "
                    f"nor a map file ({', '.join(MAP_SUFFIXES)})"
                )
            if self.voxel_size_angstrom is None and self.source in PHANTOM_NAMES:
                raise ValueError(
                    f"dataset {name}: phantom '{self.source}' has no voxel size; set voxel_size_angstrom in the sheet"
                )
            if self.corruption == "tiltseries" and self.tilt_step_deg is None:
                raise ValueError(f"dataset {name}: corruption 'tiltseries' needs tilt_step_deg")
            if self.corruption == "fourier" and set(TILT_SERIES_METHODS) & set(self.methods):
                method = next(m for m in TILT_SERIES_METHODS if m in self.methods)
                raise ValueError(
                    f"dataset {name}: method '{method}' needs a tilt series, but corruption is 'fourier'; "
                    f"use corruption 'tiltseries' or drop {method}"
                )
        else:
            if self.corruption is not None:
                raise ValueError(f"dataset {name}: corruption applies to synthetic datasets only (kind is {self.kind})")
            if self.shape_px is not None:
                raise ValueError(f"dataset {name}: shape_px applies to phantoms only")
        if self.defocus_angstrom is not None:
            for column in ("voltage_kv", "cs_mm"):
                if getattr(self, column) is None:
                    raise ValueError(
                        f"dataset {name}: defocus_angstrom is given, so column {column} is required for the CTF"
                    )
        if self.effective_kind == "tiltseries" and self.angles is None and self.kind != "portal" and not (
                self.alignment or "").lower().endswith((".aln", ".json")):
            raise ValueError(f"dataset {name}: a tiltseries dataset needs an angles file (.tlt/.rawtlt/.mdoc)")
        if self.effective_kind == "tomogram" and set(TILT_SERIES_METHODS) & set(self.methods):
            raise ValueError(f"dataset {name}: methods {' and '.join(TILT_SERIES_METHODS)} need a tilt series; "
                             "a tomogram has none")
        self._check_validation_columns()
        return self

    def _check_validation_columns(self) -> None:
        """Reference range and halves (issue 12): tilt series only, nested ranges, frame stacks paired."""
        name = self.dataset
        given = [c for c in ("reference_tilt_min_deg", "reference_tilt_max_deg", "halves") if getattr(self, c) is not None]
        if given and not self.has_tilt_series:
            raise ValueError(
                f"dataset {name}: column {given[0]} needs a tilt series, but kind is {self.effective_kind}"
                + (" (corruption 'fourier')" if self.kind == "synthetic" else "")
                + f"; leave {given[0]} empty"
            )
        lo, hi = self.reference_tilt_min_deg, self.reference_tilt_max_deg
        if (lo is None) != (hi is None):
            missing = "reference_tilt_max_deg" if hi is None else "reference_tilt_min_deg"
            raise ValueError(f"dataset {name}: column {missing} is empty but its partner is set; give both or neither")
        if lo is not None and lo > self.tilt_min_deg:
            raise ValueError(
                f"dataset {name}: column reference_tilt_min_deg ({lo:g}) is above tilt_min_deg ({self.tilt_min_deg:g}): "
                "the reference range must contain the working range"
            )
        if hi is not None and hi < self.tilt_max_deg:
            raise ValueError(
                f"dataset {name}: column reference_tilt_max_deg ({hi:g}) is below tilt_max_deg ({self.tilt_max_deg:g}): "
                "the reference range must contain the working range"
            )
        frames = [c for c in ("source_even", "source_odd") if getattr(self, c) is not None]
        if self.halves == "frames" and len(frames) < 2:
            missing = "source_odd" if "source_even" in frames else "source_even"
            raise ValueError(f"dataset {name}: halves 'frames' needs column {missing} (the odd/even frame stack)")
        if frames and self.halves != "frames":
            raise ValueError(f"dataset {name}: column {frames[0]} applies to halves 'frames' only "
                             f"(halves is {self.halves or 'empty'})")
        if self.halves == "alternate" and self.kind == "synthetic":
            check_alternate_halves(self.nominal_angles_deg(default_step_deg=self.tilt_step_deg or 1.0),
                                   self, where=f"dataset {name}")

    def simulated_angles_deg(self) -> np.ndarray:
        """Tilts a synthetic ``tiltseries`` row is projected at: the working range's nominal angles
        (:meth:`nominal_angles_deg` with ``tilt_step_deg``), extended by the same step outward to
        the reference range when there is one (so the working tilts are the same with or without it).
        """
        if self.tilt_step_deg is None:
            raise ValueError(f"dataset {self.dataset}: simulating a tilt series needs tilt_step_deg")
        angles = self.nominal_angles_deg(default_step_deg=self.tilt_step_deg)
        if self.reference_range_deg is None:
            return angles
        lo, hi = self.reference_range_deg
        step = self.tilt_step_deg
        below = self.tilt_min_deg - step * np.arange(1, int(np.floor((self.tilt_min_deg - lo) / step + 1e-6)) + 1)
        above = self.tilt_max_deg + step * np.arange(1, int(np.floor((hi - self.tilt_max_deg) / step + 1e-6)) + 1)
        return np.concatenate([below[::-1], angles, above])

    @property
    def reference_range_deg(self) -> tuple[float, float] | None:
        """``(reference_tilt_min_deg, reference_tilt_max_deg)``, or None without a reference range."""
        if self.reference_tilt_min_deg is None or self.reference_tilt_max_deg is None:
            return None
        return (self.reference_tilt_min_deg, self.reference_tilt_max_deg)

    def _check_empiar(self) -> None:
        name = self.dataset
        if self.data_kind is None:
            raise ValueError(
                f"dataset {name}: kind 'empiar' needs data_kind 'tiltseries' or 'tomogram' (what the source file is)"
            )
        source_name = check_fetch_location(name, "source", self.source, MAP_SUFFIXES)
        if self.angles is not None:
            angles_name = check_fetch_location(name, "angles", self.angles, ANGLE_SUFFIXES)
            if angles_name == source_name:
                raise ValueError(f"dataset {name}: source and angles have the same file name {source_name!r}")

    def _check_portal(self) -> None:
        name = self.dataset
        if self.data_kind is None:
            raise ValueError(f"dataset {name}: kind 'portal' needs data_kind 'tiltseries' or 'tomogram' (what to "
                             "download)")
        import re

        if not re.match(_PORTAL_SOURCE, self.source):
            raise ValueError(f"dataset {name}: column source {self.source!r} of a portal row must be run:<id>, "
                             "tiltseries:<id> or tomogram:<id> (the CryoET Data Portal's numeric id)")
        for column in ("angles", "alignment", "sha256", "tilt_axis_deg"):
            if getattr(self, column) is not None:
                raise ValueError(f"dataset {name}: column {column} is not used with kind 'portal' (the portal gives "
                                 "the files and the alignment); leave it empty")

    def _check_alignment_columns(self) -> None:
        name = self.dataset
        for column in ("tilt_axis_deg", "alignment"):
            if getattr(self, column) is not None and self.effective_kind != "tiltseries":
                raise ValueError(f"dataset {name}: column {column} applies to tilt series only (kind is {self.kind})")
        if self.tilt_axis_deg is not None and self.alignment is not None:
            raise ValueError(f"dataset {name}: columns tilt_axis_deg ({self.tilt_axis_deg:g}) and alignment are both "
                             "given; an alignment file carries its own rotation: leave tilt_axis_deg empty")
        if self.alignment is not None and not self.alignment.lower().endswith(ALIGNMENT_SUFFIXES):
            raise ValueError(f"dataset {name}: column alignment {self.alignment!r} must be an IMOD .xf, AreTomo .aln "
                             "or CryoET Data Portal .json file")

    @property
    def effective_kind(self) -> str:
        """``data_kind`` for an ``empiar``/``portal`` row (what was fetched), else ``kind``."""
        return self.data_kind if self.kind in ("empiar", "portal") and self.data_kind else self.kind

    @property
    def needs_alignment(self) -> bool:
        """Whether the tilt series goes through ``align_tilt_series`` (an alignment, or an axis off y)."""
        if self.kind == "portal":
            return self.data_kind == "tiltseries"
        return self.alignment is not None or self.tilt_axis_deg not in (None, 0.0)

    def portal_files(self, root: str = FETCH_ROOT) -> dict[str, str]:
        """Where ``fetch_portal`` puts a ``portal`` row's files (role → path); ``{}`` for other kinds."""
        if self.kind != "portal" or self.data_kind is None:
            return {}
        return {role: f"{root}/{self.dataset}/{name}" for role, name in PORTAL_FILES[self.data_kind].items()}

    def fetched_files(self, root: str = FETCH_ROOT) -> dict[str, str]:
        """Where ``fetch_dataset`` puts an ``empiar`` row's files: ``{"source": path, "angles": path}``.

        Paths are ``{root}/{dataset}/{file name of the URL}``; ``{}`` for other kinds.
        """
        if self.kind != "empiar":
            return {}
        files = {"source": f"{root}/{self.dataset}/{fetch_file_name(self.source)}"}
        if self.angles is not None:
            files["angles"] = f"{root}/{self.dataset}/{fetch_file_name(self.angles)}"
        return files

    def with_fetched_paths(self, root: str = FETCH_ROOT) -> DatasetRow:
        """The row the stages see after ``fetch_dataset``/``fetch_portal``: its paths point at the local copies.

        Rows of other kinds come back unchanged.
        """
        files = self.fetched_files(root) or self.portal_files(root)
        return self.model_copy(update=files) if files else self

    @property
    def is_phantom(self) -> bool:
        """True when ``source`` names a built-in phantom rather than a file."""
        return self.kind == "synthetic" and self.source in PHANTOM_NAMES

    @property
    def has_ground_truth(self) -> bool:
        """Synthetic datasets know their ground truth."""
        return self.kind == "synthetic"

    @property
    def has_ctf(self) -> bool:
        """Whether CTF deconvolution applies (a defocus is given)."""
        return self.defocus_angstrom is not None

    @property
    def needs_subtomograms(self) -> bool:
        """Datasets on the CryoGEN/IsoNet path: tomograms, or rows asking for isonet/cryogen."""
        return self.effective_kind == "tomogram" or bool(set(TRAINED_METHODS) & set(self.methods))

    @property
    def has_tilt_series(self) -> bool:
        """Whether a tilt series exists (simulated or given), i.e. WBP and CN can run."""
        return self.effective_kind == "tiltseries" or (self.kind == "synthetic" and self.corruption == "tiltseries")

    def tilt_range_matching(self, recorded_deg: tuple[float, float], *, recorded_in: str, fix: str
                            ) -> tuple[float, float]:
        """The row's tilt range (the dataset's one source of truth), checked against a copy a file carries.

        Raises
        ------
        ValueError
            ``recorded_deg`` differs (by more than 1e-6°): the message names both ranges,
            ``recorded_in`` (what carries the copy) and ``fix``.
        """
        row = (float(self.tilt_min_deg), float(self.tilt_max_deg))
        recorded = (float(recorded_deg[0]), float(recorded_deg[1]))
        if max(abs(a - b) for a, b in zip(row, recorded, strict=True)) > 1e-6:
            raise ValueError(
                f"{recorded_in} the tilt range [{recorded[0]:g}, {recorded[1]:g}] deg but dataset {self.dataset}'s "
                f"row gives tilt_min_deg {row[0]:g}, tilt_max_deg {row[1]:g}; {fix}"
            )
        return row

    def nominal_angles_deg(self, *, default_step_deg: float, force_step: bool = False) -> np.ndarray:
        """Tilt angles from the sheet's range and step (``default_step_deg`` if the step is empty
        or ``force_step`` is set).

        Returns
        -------
        numpy.ndarray
            ``(n_tilts,)`` degrees from ``tilt_min_deg`` to ``tilt_max_deg`` inclusive
            (the last step may be shorter so that ``tilt_max_deg`` is always included).
        """
        step = default_step_deg if force_step else (self.tilt_step_deg or default_step_deg)
        angles = np.arange(self.tilt_min_deg, self.tilt_max_deg + 1e-6, step)
        if self.tilt_max_deg - angles[-1] > 1e-6:
            angles = np.append(angles, self.tilt_max_deg)
        return angles
