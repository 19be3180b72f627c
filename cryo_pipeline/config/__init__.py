"""Stage configs (pydantic), the dataset-sheet row model, and schema export."""

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.pipeline import (
    PipelineConfig,
    load_pipeline_config,
    parse_pipeline_config,
    parse_stage_config,
)
from cryo_pipeline.config.stages import (
    EvaluateConfig,
    FourierWedgeConfig,
    ProjectConfig,
    ReportConfig,
    SimulateConfig,
    WbpConfig,
)

__all__ = [
    "DatasetRow",
    "EvaluateConfig",
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
