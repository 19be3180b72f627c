"""Stage configs (pydantic), the dataset-sheet row model, and schema export."""

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.execution import ExecutionConfig
from cryo_pipeline.config.pipeline import (
    PipelineConfig,
    load_pipeline_config,
    parse_pipeline_config,
    parse_stage_config,
)
from cryo_pipeline.config.stages import (
    BinConfig,
    DeconvolveConfig,
    EvaluateConfig,
    ExtractConfig,
    MaskConfig,
    FourierWedgeConfig,
    ProjectConfig,
    ReportConfig,
    SimulateConfig,
    WbpConfig,
)

__all__ = [
    "BinConfig",
    "DeconvolveConfig",
    "ExtractConfig",
    "MaskConfig",
    "DatasetRow",
    "EvaluateConfig",
    "ExecutionConfig",
    "FourierWedgeConfig",
    "PipelineConfig",
    "ProjectConfig",
    "ReportConfig",
    "SimulateConfig",
    "WbpConfig",
    "load_pipeline_config",
    "parse_pipeline_config",
    "parse_stage_config",
]
