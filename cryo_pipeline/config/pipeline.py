"""The whole workflow config: ``config/config.yaml`` as one pydantic model."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from cryo_pipeline.config.execution import ExecutionConfig, moved_key_errors
from cryo_pipeline.config.stages import (
    AlignConfig,
    BinConfig,
    CnConfig,
    DeconvolveConfig,
    EvaluateConfig,
    ExtractConfig,
    FourierWedgeConfig,
    MaskConfig,
    PredictConfig,
    ProjectConfig,
    ReferenceConfig,
    ReportConfig,
    SimulateConfig,
    StageConfig,
    StitchConfig,
    TrainConfig,
    WbpConfig,
)

STAGE_SECTIONS = (
    "simulate", "fourier_wedge", "project", "align", "wbp", "reference", "bin", "deconvolve", "mask", "extract", "train",
    "predict", "cn", "stitch", "evaluate", "report",
)


class PipelineConfig(StageConfig):
    """Top level of ``config/config.yaml``. Outputs go under ``results/<run>/``.

    The stage sections (:data:`STAGE_SECTIONS`) hold the science; ``execution`` holds
    where and how fast it runs and never reaches a rule's params.
    """

    run: str = Field(
        "demo",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Run name; outputs go to results/<run>/, logs to logs/<run>/.",
    )
    datasets: str = Field("config/datasets.tsv", description="Path to the dataset sheet (TSV).")
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    fourier_wedge: FourierWedgeConfig = Field(default_factory=FourierWedgeConfig)
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    wbp: WbpConfig = Field(default_factory=WbpConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    bin: BinConfig = Field(default_factory=BinConfig)
    deconvolve: DeconvolveConfig = Field(default_factory=DeconvolveConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    cn: CnConfig = Field(default_factory=CnConfig)
    stitch: StitchConfig = Field(default_factory=StitchConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_moved_keys(cls, data):
        messages = moved_key_errors(data)
        if messages:
            raise ValueError("; ".join(messages))
        return data

    def science_json(self) -> str:
        """The config without the ``execution`` section, as JSON (what the report shows as the run's science)."""
        return self.model_dump_json(exclude={"execution"})


# Errors whose pydantic message says what is wrong but not what is allowed ("Input should be a
# valid integer"): the line gets "; allowed: <what the field's schema allows>".
_TYPE_ERRORS = frozenset({
    "int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "finite_number", "bool_parsing",
    "bool_type", "string_type", "model_type", "model_attributes_type", "dict_type", "tuple_type", "list_type",
    "none_required", "missing",
})


def _known_models() -> dict[str, type[BaseModel]]:
    """The config and sheet models by class name (a ValidationError names its model only)."""
    from cryo_pipeline.config.dataset import DatasetRow

    found: dict[str, type[BaseModel]] = {"DatasetRow": DatasetRow}
    pending: list[type[BaseModel]] = [StageConfig]
    while pending:
        model = pending.pop()
        found[model.__name__] = model
        pending.extend(model.__subclasses__())
    return found


def _describe(node: dict, defs: dict) -> str:
    """What a JSON-schema node allows, in words: ``an integer >= 1 and <= 256``, ``one of 'a', 'b'``."""
    node = defs.get(node["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in node else node
    if "anyOf" in node:
        return " or ".join(_describe(branch, defs) for branch in node["anyOf"])
    if "enum" in node or "const" in node:
        return "one of " + ", ".join(repr(v) for v in node.get("enum", [node.get("const")]))
    kind = node.get("type")
    if kind in ("integer", "number"):
        bounds = [f"{op} {node[k]:g}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                    ("maximum", "<="), ("exclusiveMaximum", "<")) if k in node]
        return ("an integer" if kind == "integer" else "a number") + (" " + " and ".join(bounds) if bounds else "")
    if kind == "boolean":
        return "true or false"
    if kind == "null":
        return "empty"
    if kind == "string":
        return f"text matching {node['pattern']}" if "pattern" in node else "text"
    if kind == "array":
        items = node.get("prefixItems") or [node.get("items", {})]
        return f"a list of {len(items)} items" if "prefixItems" in node else f"a list of ({_describe(items[0], defs)})"
    if kind == "object" and "properties" in node:
        return "a mapping with keys " + ", ".join(node["properties"])
    return kind or "see the schema"


@functools.cache
def _validation_schema(model: type[BaseModel]) -> dict:
    return model.model_json_schema(mode="validation")


def _allowed(model: type[BaseModel] | None, loc: tuple) -> str | None:
    """What the model's schema allows at ``loc``, or None when unknown."""
    if model is None:
        return None
    schema = _validation_schema(model)
    defs = schema.get("$defs", {})
    node: dict = schema
    for part in loc:
        while "$ref" in node or "anyOf" in node:
            if "$ref" in node:
                node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            else:  # the non-null branch of an optional field
                node = next((b for b in node["anyOf"] if b.get("type") != "null"), {})
        if isinstance(part, int):
            items = node.get("prefixItems")
            node = items[part] if items and part < len(items) else node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
        if not node:
            return None
    return _describe(node, defs)


def format_validation_error(
    error: ValidationError, *, source: str, model: type[BaseModel] | None = None
) -> str:
    """One line per problem: ``<source>: key.path: message (got value)``.

    A whole-model check (e.g. ``tilt_min_deg < tilt_max_deg``) has no key; its message
    already names the values, so the whole input mapping is not repeated. A wrong type
    (``"abc"`` for an integer) also says what is allowed, from the schema of ``model``
    (default: the config or sheet model the error names):
    ``...(got 'abc'); allowed: an integer >= 1 and <= 256``.
    """
    model = model or _known_models().get(error.title)
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        key = ".".join(str(part) for part in item["loc"])
        if not key and isinstance(got, dict):
            lines.append(f"{source}: {message}")
            continue
        if item["type"] == "missing":  # its "input" is the whole mapping around the key: not repeated
            line = f"{source}: {key}: {message}"
        else:
            line = f"{source}: {key or '<top>'}: {message} (got {got!r})"
        allowed = _allowed(model, tuple(item["loc"])) if item["type"] in _TYPE_ERRORS and key else None
        lines.append(f"{line}; allowed: {allowed}" if allowed else line)
    return "; ".join(lines)


def parse_pipeline_config(data: dict, *, source: str = "config") -> PipelineConfig:
    """Validate a config mapping; raise ``ValueError`` naming each bad key."""
    try:
        return PipelineConfig.model_validate(data or {})
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source, model=PipelineConfig)) from None


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
        raise ValueError(format_validation_error(error, source=source, model=model)) from None
