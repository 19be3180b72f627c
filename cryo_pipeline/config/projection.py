"""Each rule's projection of the sheet row and the config: only what its stage reads.

The declarations live in :mod:`cryo_pipeline.config.reads`. This module applies them:

* in the workflow: :func:`row_json` and :func:`config_json` give a rule's ``params``
  (JSON of the declared columns / keys only, so other values never rerun it);
* in a command: :func:`parse_row` and :func:`parse_config` read ``--dataset-json`` /
  ``--config-json`` back (a whole row or section is accepted too, and projected);
* in a stage: :func:`reads` wraps ``run``, so its ``dataset`` and ``cfg`` are a
  :class:`Projection` whichever way it was called. Reading a column or key the rule did
  not declare raises :class:`UndeclaredRead`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import MethodType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from cryo_pipeline.config.dataset import DatasetRow, parse_shape_px
from cryo_pipeline.config.execution import moved_section_key_errors
from cryo_pipeline.config.pipeline import PipelineConfig, format_validation_error
from cryo_pipeline.config.reads import ALL, STAGE_READS, Reads

__all__ = ["Projection", "UndeclaredRead", "config_json", "declared_keys", "declared_sheet", "parse_config",
           "parse_row", "reads", "row_json", "section_model", "view_config", "view_row"]

F = TypeVar("F", bound=Callable[..., Any])


class UndeclaredRead(RuntimeError):
    """A stage read a sheet column or config key that its rule does not declare (a bug, not a user error)."""


def _reads(rule: str) -> Reads:
    try:
        return STAGE_READS[rule]
    except KeyError:
        raise KeyError(f"rule {rule!r} has no entry in cryo_pipeline.config.reads.STAGE_READS") from None


def section_model(section: str) -> type[BaseModel]:
    """The pydantic model of config section ``section`` (``"cn"`` → ``CnConfig``)."""
    return PipelineConfig.model_fields[section].annotation


def declared_sheet(rule: str) -> tuple[str, ...]:
    """The sheet columns ``rule`` reads."""
    return _reads(rule).sheet


def declared_keys(rule: str) -> tuple[str, ...]:
    """The keys of its config section ``rule`` reads (:data:`~cryo_pipeline.config.reads.ALL` resolved)."""
    entry = _reads(rule)
    if entry.section is None:
        return ()
    return tuple(section_model(entry.section).model_fields) if entry.keys == ALL else entry.keys


class Projection:
    """A sheet row or stage config as one rule sees it: the declared names, read-only.

    Attribute access works as on the model (derived properties and methods of the
    model, e.g. ``DatasetRow.effective_kind``, are computed from the declared fields);
    any other field of the model raises :class:`UndeclaredRead`. ``model_dump``,
    ``model_dump_json`` and ``model_copy`` behave as pydantic's, limited to the declared names.
    """

    __slots__ = ("_source", "_names", "_owner", "_rule", "_what")

    def __init__(self, source: BaseModel, names: tuple[str, ...], *, owner: type[BaseModel], rule: str,
                 what: str) -> None:
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_rule", rule)
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in Projection.__slots__:
            raise AttributeError(name)
        if name in self._names:
            return getattr(self._source, name)
        owner = self._owner
        if name in owner.model_fields:
            raise UndeclaredRead(
                f"rule {self._rule} reads {self._what}{name}, which it does not declare: add it to "
                f"STAGE_READS[{self._rule!r}] in cryo_pipeline/config/reads.py (declared: {', '.join(self._names)})"
            )
        member = inspect.getattr_static(owner, name, None)
        if isinstance(member, property):
            return member.fget(self)
        if inspect.isfunction(member):
            return MethodType(member, self)
        raise AttributeError(f"{owner.__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{self._owner.__name__} of rule {self._rule} is read-only")

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={getattr(self._source, n)!r}" for n in self._names)
        return f"{self._owner.__name__}[{self._rule}]({values})"

    def __reduce__(self):
        return (Projection._restore, (self._source, self._names, self._owner.__module__, self._owner.__qualname__,
                                      self._rule, self._what))

    @staticmethod
    def _restore(source, names, module, qualname, rule, what):  # pragma: no cover - pickling only
        import importlib

        owner = getattr(importlib.import_module(module), qualname)
        return Projection(source, names, owner=owner, rule=rule, what=what)

    @property
    def declared(self) -> tuple[str, ...]:
        """The names this rule declared."""
        return self._names

    def model_dump(self, *, mode: str = "python", **_: Any) -> dict[str, Any]:
        """The declared values (``mode="json"``: JSON types), in the model's field order."""
        return self._source.model_dump(mode=mode, include=set(self._names))

    def model_dump_json(self, **_: Any) -> str:
        """The declared values as JSON."""
        return self._source.model_dump_json(include=set(self._names))

    def model_copy(self, *, update: dict[str, Any] | None = None, **_: Any) -> Projection:
        """A copy with some declared values replaced (as ``BaseModel.model_copy``, unvalidated)."""
        for name in update or {}:
            if name not in self._names:
                getattr(self, name)  # raises UndeclaredRead for a field, AttributeError otherwise
        return Projection(self._source.model_copy(update=update), self._names, owner=self._owner, rule=self._rule,
                          what=self._what)


def _check_covers(view: Projection, names: tuple[str, ...], rule: str) -> None:
    missing = [n for n in names if n not in view.declared]
    if missing:
        raise UndeclaredRead(f"rule {rule} needs {', '.join(missing)}, which the {view._rule} view passed to it "
                             "does not hold")


def view_row(rule: str, row: DatasetRow | Projection) -> Projection:
    """``row`` as ``rule`` sees it (only its declared sheet columns)."""
    names = declared_sheet(rule)
    if isinstance(row, Projection):
        _check_covers(row, names, rule)
        return Projection(row._source, names, owner=DatasetRow, rule=rule, what="sheet column ")
    if not isinstance(row, DatasetRow):
        raise TypeError(f"rule {rule} needs a DatasetRow, got {type(row).__name__}")
    return Projection(row, names, owner=DatasetRow, rule=rule, what="sheet column ")


def view_config(rule: str, cfg: BaseModel | Projection) -> Projection:
    """``cfg`` (its rule's config section) as ``rule`` sees it (only the declared keys)."""
    names = declared_keys(rule)
    section = _reads(rule).section
    model = section_model(section) if section else None
    if isinstance(cfg, Projection):
        _check_covers(cfg, names, rule)
        return Projection(cfg._source, names, owner=cfg._owner, rule=rule, what=cfg._what)
    if model is None or not isinstance(cfg, model):
        expected = model.__name__ if model else "no config"
        raise TypeError(f"rule {rule} reads {expected}, got {type(cfg).__name__}")
    return Projection(cfg, names, owner=model, rule=rule, what=f"config key {section}.")


def reads(rule: str) -> Callable[[F], F]:
    """Decorator of a stage function: its ``dataset`` and ``cfg`` keyword arguments become ``rule``'s views."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dataset") is not None:
                kwargs["dataset"] = view_row(rule, kwargs["dataset"])
            if kwargs.get("cfg") is not None:
                kwargs["cfg"] = view_config(rule, kwargs["cfg"])
            return func(*args, **kwargs)

        wrapper.rule = rule  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


# --- the workflow side: params of a rule ------------------------------------------------
def row_json(rule: str, row: DatasetRow) -> str:
    """``--dataset-json`` of ``rule``: the declared columns of ``row`` as JSON."""
    return row.model_dump_json(include=set(declared_sheet(rule)))


def config_json(rule: str, cfg: PipelineConfig) -> str:
    """``--config-json`` of ``rule``: the declared keys of its section as JSON (``""`` without a section)."""
    section = _reads(rule).section
    if section is None:
        return ""
    return getattr(cfg, section).model_dump_json(include=set(declared_keys(rule)))


# --- the command side: --dataset-json / --config-json -----------------------------------
@functools.cache
def _columns_model(names: tuple[str, ...]) -> type[BaseModel]:
    """A model of only the sheet columns ``names`` (their types and bounds, no whole-row checks)."""
    fields = {name: (DatasetRow.model_fields[name].annotation, DatasetRow.model_fields[name]) for name in names}
    return create_model("SheetColumns", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


_OBJECT = TypeAdapter(dict[str, Any])


def _load_object(text: str, source: str) -> dict[str, Any]:
    """A JSON object of names and values (empty text = ``{}``); errors as pydantic words them."""
    try:
        return _OBJECT.validate_json(text) if text else {}
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source)) from None


def parse_row(text: str, rule: str, *, source: str = "--dataset-json") -> Projection:
    """The sheet row a command got, as ``rule`` sees it.

    ``text`` holds either only columns ``rule`` declares (what the workflow passes; each
    is type- and bound-checked, the whole row was validated at workflow start), or a
    whole sheet row (validated as one, then projected).
    """
    data = _load_object(text, source)
    names = declared_sheet(rule)
    try:
        if set(data) <= set(names):
            if isinstance(data.get("shape_px"), (str, int)):
                data["shape_px"] = parse_shape_px(data["shape_px"])
            model = _columns_model(names)
            return Projection(model.model_validate(data), names, owner=DatasetRow, rule=rule, what="sheet column ")
        return view_row(rule, DatasetRow.model_validate(data))
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source, model=DatasetRow)) from None


def parse_config(text: str, rule: str, *, source: str | None = None) -> Projection | None:
    """The config section a command got (empty = the defaults), as ``rule`` sees it; None without a section."""
    section = _reads(rule).section
    if section is None:
        return None
    source = source or section
    data = _load_object(text, source)
    moved = moved_section_key_errors(section, data)
    if moved:
        raise ValueError(f"{source}: " + "; ".join(moved))
    model = section_model(section)
    try:
        return view_config(rule, model.model_validate(data))
    except ValidationError as error:
        raise ValueError(format_validation_error(error, source=source, model=model)) from None
