"""The whole workflow config: ``config/config.yaml`` as one pydantic model."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from cryo_pipeline.config.stages import (
    BinConfig,
    DeconvolveConfig,
    EvaluateConfig,
    ExtractConfig,
    MaskConfig,
    PredictConfig,
    FourierWedgeConfig,
    ProjectConfig,
    ReportConfig,
    SimulateConfig,
    StageConfig,
    TrainConfig,
    WbpConfig,
)

STAGE_SECTIONS = (
    "simulate", "fourier_wedge", "project", "wbp", "bin", "deconvolve", "mask", "extract", "train", "predict",
    "evaluate", "report",
)


class PipelineConfig(StageConfig):
    """Top level of ``config/config.yaml``. Outputs go under ``results/<run>/``."""

    run: str = Field(
        "demo",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Run name; outputs go to results/<run>/, logs to logs/<run>/.",
    )
    datasets: str = Field("config/datasets.tsv", description="Path to the dataset sheet (TSV).")
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    fourier_wedge: FourierWedgeConfig = Field(default_factory=FourierWedgeConfig)
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    wbp: WbpConfig = Field(default_factory=WbpConfig)
    bin: BinConfig = Field(default_factory=BinConfig)
    deconvolve: DeconvolveConfig = Field(default_factory=DeconvolveConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


def format_validation_error(error: ValidationError, *, source: str) -> str:
    """One line per problem: ``<source>: key.path: message (got value)``.

    A whole-model check (e.g. ``tilt_min_deg < tilt_max_deg``) has no key; its message
    already names the values, so the whole input mapping is not repeated.
    """
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        key = ".".join(str(part) for part in item["loc"])
        if not key and isinstance(got, dict):
            lines.append(f"{source}: {message}")
        else:
            lines.append(f"{source}: {key or '<top>'}: {message} (got {got!r})")
    return "; ".join(lines)


def parse_pipeline_config(data: dict, *, source: str = "config") -> PipelineConfig:
    """Validate a config mapping; raise ``ValueError`` naming each bad key."""
    try:
        return PipelineConfig.model_validate(data or {})
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source)) from None


def load_pipeline_config(path: Path) -> PipelineConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with path.open() as handle:
        data = yaml.safe_load(handle)
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return parse_pipeline_config(data or {}, source=str(path))


def parse_stage_config(model: type[StageConfig], text: str | None, *, source: str) -> StageConfig:
    """Build a stage config from a JSON string (what a rule passes); empty = defaults."""
    try:
        return model.model_validate_json(text) if text else model()
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source)) from None
