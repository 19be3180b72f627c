"""The CN slab plan file (``results/<run>/<dataset>/cn/slabs.json``) and the paths of its slabs.

``plan_slabs`` writes it; ``fit_slab_seed``, ``fit_slab``, ``stitch_slabs`` and the
workflow (``workflow/rules/common.smk``: how many ``fit_slab`` jobs, which weights each
starts from) read it through :func:`read_slab_plan`, never by raw keys. The JSON holds
the slab geometry (:class:`cryo_pipeline.ops.slabs.SlabPlan`: ``height_px``,
``slab_px``, ``halo_px``, ``window_px``, ``origins_y``, and for readers ``n_slabs``,
``boundaries_y``) followed by the fields of :class:`SlabPlanRecord`.

Paths beside a plan ``<folder>/slabs.json``: the seed network ``<folder>/seed/model.pt``;
slab ``i``'s tile store, weights and record ``<folder>/slabs/slab_<i>.{zarr,pt,json}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.ops.slabs import SlabPlan, plan_slabs

__all__ = ["SlabPaths", "SlabPlanRecord", "init_model_path", "plan_from_json", "plan_to_json", "read_slab_plan",
           "seed_model_path", "slab_paths", "write_slab_plan"]


def plan_to_json(plan: SlabPlan) -> dict[str, Any]:
    """The slab geometry as the file holds it (with ``n_slabs`` and ``boundaries_y`` for readers)."""
    return {"height_px": plan.height_px, "slab_px": plan.slab_px, "halo_px": plan.halo_px,
            "window_px": plan.window_px, "origins_y": list(plan.origins_y), "n_slabs": plan.n_slabs,
            "boundaries_y": list(plan.boundaries_y)}


def plan_from_json(data: dict[str, Any]) -> SlabPlan:
    """Inverse of :func:`plan_to_json` (other keys ignored); the geometry is planned again and must match.

    Raises
    ------
    ValueError
        The recorded origins differ from the ones of the recorded height, slab and halo.
    """
    plan = plan_slabs(int(data["height_px"]), slab_px=int(data["slab_px"]), halo_px=int(data["halo_px"]))
    if list(plan.origins_y) != [int(v) for v in data["origins_y"]]:
        raise ValueError(f"slab plan origins {data['origins_y']} do not match height {data['height_px']}, slab "
                         f"{data['slab_px']}, halo {data['halo_px']} (expected {list(plan.origins_y)})")
    return plan


@dataclass(frozen=True)
class SlabPlanRecord:
    """A slab plan with what every slab's fit needs.

    Attributes
    ----------
    plan : SlabPlan
        The slab windows along y.
    volume_shape_zyx : tuple of int
        `(d, H, w)` of the reconstructed volume.
    voxel_size_angstrom : float
        Voxel size of the tilt series.
    tilt_indices : tuple of int
        Images of the tilt series inside the sheet's tilt range.
    angles_deg : tuple of float
        Their tilt angles.
    tilt_series_rms : float
        RMS of those images.
    value_scale : float
        Network output amplitude ``rms / d``.
    n_parameters : int
        Parameters of the network.
    params_per_voxel : float
        Parameters per voxel of one slab's core.
    schedule : str
        ``seed`` or ``chain`` (the CN config's, recorded).
    tilt_series : str
        The tilt series the plan was made from.
    dataset, provenance : dict
        The sheet fields ``plan_slabs`` read, and how the plan was made.
    """

    plan: SlabPlan
    volume_shape_zyx: tuple[int, int, int]
    voxel_size_angstrom: float
    tilt_indices: tuple[int, ...]
    angles_deg: tuple[float, ...]
    tilt_series_rms: float
    value_scale: float
    n_parameters: int
    params_per_voxel: float
    schedule: str
    tilt_series: str
    dataset: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_slabs(self) -> int:
        """Number of slabs (= ``fit_slab`` jobs)."""
        return self.plan.n_slabs

    @property
    def seed_slab(self) -> int:
        """The slab the seed network is fitted on (the middle one)."""
        return self.plan.seed_index()

    @property
    def tilt_range_deg(self) -> tuple[float, float]:
        """Smallest and largest tilt angle used."""
        return min(self.angles_deg), max(self.angles_deg)

    def to_json(self) -> dict[str, Any]:
        """The file's content (key order kept stable across versions)."""
        return {
            **plan_to_json(self.plan),
            "volume_shape_zyx": list(self.volume_shape_zyx),
            "voxel_size_angstrom": float(self.voxel_size_angstrom),
            "tilt_indices": [int(i) for i in self.tilt_indices],
            "angles_deg": [float(a) for a in self.angles_deg],
            "tilt_series_rms": float(self.tilt_series_rms),
            "value_scale": float(self.value_scale),
            "seed_slab": self.seed_slab,
            "n_parameters": int(self.n_parameters),
            "params_per_voxel": float(self.params_per_voxel),
            "schedule": self.schedule,
            "tilt_series": self.tilt_series,
            "dataset": self.dataset,
            "provenance": self.provenance,
        }


def write_slab_plan(path: Path, record: SlabPlanRecord) -> None:
    """Write ``record`` as indented JSON (atomically)."""
    atomic_write_text(Path(path), json.dumps(record.to_json(), indent=2) + "\n")


def read_slab_plan(path: Path) -> SlabPlanRecord:
    """Read a plan written by :func:`write_slab_plan`; the slab geometry is checked again.

    Raises
    ------
    FileNotFoundError
        No plan at ``path`` (``plan_slabs`` has not run).
    ValueError
        The file is not a valid slab plan (key missing, wrong type, inconsistent geometry).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"slab plan {path} does not exist; run plan_slabs first")
    with path.open() as handle:
        data = json.load(handle)
    try:
        return SlabPlanRecord(
            plan=plan_from_json(data),
            volume_shape_zyx=tuple(int(n) for n in data["volume_shape_zyx"]),
            voxel_size_angstrom=float(data["voxel_size_angstrom"]),
            tilt_indices=tuple(int(i) for i in data["tilt_indices"]),
            angles_deg=tuple(float(a) for a in data["angles_deg"]),
            tilt_series_rms=float(data["tilt_series_rms"]),
            value_scale=float(data["value_scale"]),
            n_parameters=int(data["n_parameters"]),
            params_per_voxel=float(data["params_per_voxel"]),
            schedule=str(data["schedule"]),
            tilt_series=str(data["tilt_series"]),
            dataset=dict(data.get("dataset") or {}),
            provenance=dict(data.get("provenance") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a valid slab plan ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class SlabPaths:
    """Files of one slab's fit: tile store, weights, JSON record."""

    tiles: Path
    model: Path
    record: Path


def slab_paths(plan_path: Path | str, slab: int) -> SlabPaths:
    """Where ``fit_slab`` writes slab ``slab`` of the plan at ``plan_path``."""
    folder = Path(plan_path).parent / "slabs"
    return SlabPaths(tiles=folder / f"slab_{slab}.zarr", model=folder / f"slab_{slab}.pt",
                     record=folder / f"slab_{slab}.json")


def seed_model_path(plan_path: Path | str) -> Path:
    """Where ``fit_slab_seed`` writes the seed network of the plan at ``plan_path``."""
    return Path(plan_path).parent / "seed" / "model.pt"


def init_model_path(plan_path: Path | str, slab: int, *, schedule: str, plan: SlabPlan | None = None) -> Path:
    """The weights slab ``slab`` starts from: the seed's (``seed`` schedule, and the seed slab),
    or in ``chain`` mode its neighbour's towards the seed slab (``plan`` needed then)."""
    if schedule == "seed":
        return seed_model_path(plan_path)
    if plan is None:
        raise ValueError("the chain schedule needs the slab plan to find a slab's neighbour")
    parent = plan.chain_parent(int(slab))
    return seed_model_path(plan_path) if parent is None else slab_paths(plan_path, parent).model
