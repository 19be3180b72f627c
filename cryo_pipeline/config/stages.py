"""One frozen pydantic model per stage: every scientific parameter, bounded and documented.

Runtime settings (threads, GPUs, memory, walltime) are not here: they belong to
``profiles/``. The workflow's JSON schema is generated from these models
(:mod:`cryo_pipeline.config.schema`), so a typo in ``config/config.yaml`` fails at
dry-run time with the key's name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StageConfig(BaseModel):
    """Base: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulateConfig(StageConfig):
    """``simulate_volume``: ground truth from a phantom or a real map."""

    map_interpolation_order: int = Field(
        3, ge=0, le=5, description="Spline order used to rotate a real map (0 nearest … 3 cubic)."
    )
    map_random_rotation: bool = Field(
        True, description="Rotate a real map by a seeded uniform random rotation (CryoGEN A.7.3/A.7.4)."
    )
    map_normalize: bool = Field(
        True,
        description="Scale a real map so its solvent (median of the box faces) is 0 and its maximum 1.",
    )


class FourierWedgeConfig(StageConfig):
    """``apply_fourier_wedge``: the CryoGEN paper's corruption (zero the missing wedge)."""

    soft_edge_deg: float = Field(
        0.0, ge=0.0, le=30.0, description="Raised-cosine roll-off outside the tilt range; 0 = hard edge (paper)."
    )


class ProjectConfig(StageConfig):
    """``project_tilt_series``: ground truth → tilt series (the CN paper's corruption)."""

    detector_width_px: int | None = Field(
        None, ge=1, description="Detector width in pixels; empty = the volume's x size."
    )


class WbpConfig(StageConfig):
    """``reconstruct_wbp``: weighted back-projection, the baseline."""

    filter: Literal["ramp", "shepp-logan", "cosine", "hann", "hamming"] = Field(
        "ramp", description="Apodisation of the ramp filter."
    )
    thickness_px: int | None = Field(
        None, ge=1, description="Reconstructed z thickness for real tilt series; empty = the detector width."
    )


class EvaluateConfig(StageConfig):
    """``evaluate``: metrics against the ground truth (DESIGN.md §4)."""

    windowed_ssim: bool = Field(True, description="Compute the windowed 3D SSIM (Gaussian σ = 1.5 voxels).")
    default_tilt_step_deg: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="Angular step used for the directional-FSC measured region when the sheet gives none.",
    )


class ReportConfig(StageConfig):
    """``report``: the self-contained HTML report."""

    title: str = Field("cryo_pipeline report", description="Heading of the HTML report.")
