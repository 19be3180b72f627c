"""Config fuzzing (issue 8, item 2): every invalid value of every config key is refused by name.

The invalid values are derived generically from each field's JSON schema (the pydantic
models' ``model_json_schema``, the same source as ``workflow/schemas/config.schema.yaml``):
just past every bound (``ge/gt/le/lt``), NaN and ±Inf, fractions for integers, words for
numbers and booleans, near-miss choices of a ``Literal``, strings off a pattern, ``null``
where a value is required, lists and mappings where a scalar is expected, an unknown key
in every section, a section that is not a mapping. Each goes through the three ways a
config is checked:

* ``parse_pipeline_config`` (``config/config.yaml``, ``validate-config``, ``common.smk``):
  the message must start ``<source>: <section>.<key>: `` and say what is allowed (the
  violated bound, every choice, the pattern, or ``; allowed: ...`` for a wrong type);
* ``parse_stage_config`` (the JSON a rule passes with ``--config-json``): the same, as
  ``<section>: <key>: ``;
* the generated JSON schema (Snakemake's ``validate``), which must flag the same key;
  NaN passes JSON-schema bounds (every comparison with NaN is false), so NaN is counted as
  caught by the pydantic layer that ``common.smk`` runs right after.

New stage sections (and new keys) are picked up without editing this file.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryo_pipeline.config.pipeline import PipelineConfig, parse_pipeline_config, parse_stage_config
from cryo_pipeline.config.schema import pipeline_config_schema
from cryo_pipeline.config.stages import StageConfig

FUZZ = {"derandomize": True, "database": None, "deadline": None, "print_blob": False,
        "suppress_health_check": [HealthCheck.too_slow]}
SOURCE = "my config.yaml"
_BOUND_WORDS = {"minimum": "greater than or equal to", "exclusiveMinimum": "greater than",
                "maximum": "less than or equal to", "exclusiveMaximum": "less than"}


def _stage_sections() -> dict[str, type[StageConfig]]:
    """``section -> model`` for every nested stage model of PipelineConfig."""
    sections = {}
    for name, field in PipelineConfig.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, StageConfig):
            sections[name] = field.annotation
    return sections


def _all_stage_models() -> set[type[StageConfig]]:
    found, pending = set(), list(StageConfig.__subclasses__())
    while pending:
        model = pending.pop()
        found.add(model)
        pending.extend(model.__subclasses__())
    return {m for m in found if m.__module__.startswith("cryo_pipeline.") and m is not PipelineConfig}


def _resolve(node: dict, defs: dict) -> tuple[dict, bool]:
    """The field's value schema and whether null is allowed (``X | None``)."""
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    nullable = False
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) < len(node["anyOf"])
        if len(branches) > 1:  # e.g. rows or 'all': the model's own validator words the one error
            return {"type": "union", "branches": branches}, nullable
        node = branches[0]
    return node, nullable


@dataclass(frozen=True)
class Case:
    """One invalid value for one key, and what the error must say about it."""

    section: str | None  # None: a top-level key of config.yaml
    key: str
    value: Any
    expect: str  # "bound:<schema keyword>", "choices", "pattern", "type", "extra", "mapping"

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key


def _invalid_values(node: dict, nullable: bool) -> list[tuple[Any, str]]:
    """(value, what the error must name) for one field schema."""
    values: list[tuple[Any, str]] = []
    kind = node.get("type")
    if not nullable:
        values.append((None, "choices" if "enum" in node else "type"))
    if "enum" in node:
        choices = node["enum"]
        for bad in ("not-a-choice", str(choices[0]).upper(), f" {choices[0]}", "", 0):
            if bad not in choices:
                values.append((bad, "choices"))
        return values
    if kind in ("integer", "number"):
        for keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            if keyword not in node:
                continue
            bound = node[keyword]
            below = keyword in ("minimum", "exclusiveMinimum")
            if keyword.startswith("exclusive"):
                beyond = bound
            elif kind == "integer":
                beyond = bound - 1 if below else bound + 1
            else:
                beyond = math.nextafter(bound, -math.inf if below else math.inf)
            values.append((beyond, f"bound:{keyword}"))
            if kind == "integer" or not keyword.startswith("exclusive"):
                far = bound - 10**6 if below else bound + 10**6
                values.append((far, f"bound:{keyword}"))
        values += [(math.nan, "type"), (math.inf, "type" if "maximum" not in node and "exclusiveMaximum" not in node
                                        else "type|bound"), (-math.inf, "type|bound"),
                   ("abc", "type"), ("1,5", "type"), ([1], "type"), ({"value": 1}, "type")]
        if kind == "integer":
            low = node.get("minimum", node.get("exclusiveMinimum", -10))
            values.append((low + 1.5, "type"))  # a fraction, inside the range
        return values
    if kind == "boolean":
        return values + [("maybe", "type"), (2, "type"), (-1, "type"), ([True], "type"), ("", "type")]
    if kind == "union":
        return [(bad, "union") for bad in ("not-a-choice", "", -1, [1], {"a": 1})]
    if kind == "string":
        values += [(5, "type"), (["a"], "type"), ({"a": 1}, "type")]
        if "pattern" in node:
            for bad in ("", "has space", "-leading-dash", "a/b", "x;y", "é"):
                if not re.search(node["pattern"], bad):
                    values.append((bad, "pattern"))
        return values
    raise AssertionError(f"a field type the fuzzer does not know: {node}")


def config_cases() -> list[Case]:
    """Every invalid value of every key of config.yaml, derived from the schema."""
    schema = PipelineConfig.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    sections = _stage_sections()
    cases = []
    for top_key, top_node in schema["properties"].items():
        if top_key in sections:
            model_schema = sections[top_key].model_json_schema(mode="validation")
            model_defs = model_schema.get("$defs", {})
            for key, node in model_schema["properties"].items():
                value_schema, nullable = _resolve(node, model_defs)
                cases += [Case(top_key, key, v, e) for v, e in _invalid_values(value_schema, nullable)]
            cases.append(Case(top_key, "no_such_key", 1, "extra"))
            cases += [Case(top_key, "", bad, "mapping") for bad in (5, "x", [1], True)]
        else:
            value_schema, nullable = _resolve(top_node, defs)
            cases += [Case(None, top_key, v, e) for v, e in _invalid_values(value_schema, nullable)]
    cases.append(Case(None, "no_such_section", {}, "extra"))
    return cases


CASES = config_cases()


def _config_for(case: Case) -> dict:
    if case.section is None:
        return {case.key: case.value}
    if case.expect == "mapping":
        return {case.section: case.value}
    return {case.section: {case.key: case.value}}


@functools.cache
def _model_schema(model: type) -> dict:
    return model.model_json_schema(mode="validation")


def _field_schema(case: Case) -> dict:
    model = _stage_sections()[case.section] if case.section else PipelineConfig
    schema = _model_schema(model)
    return _resolve(schema["properties"][case.key], schema.get("$defs", {}))[0]


def _check_message(message: str, case: Case, prefix: str) -> None:
    """The one problem's line names the key and what is allowed."""
    assert "\n" not in message and message.count(prefix) == 1, f"not one problem: {message}"
    line = message
    key = case.section if case.expect == "mapping" else case.dotted
    if prefix.startswith(f"{case.section}: "):  # the stage path names keys inside the section
        key = case.key
    assert line.startswith(f"{prefix}{key}: "), f"{case}: {message}"
    if case.expect == "extra":
        assert "Extra inputs are not permitted" in line
        return
    if case.expect == "mapping":
        assert "valid dictionary" in line and "allowed: a mapping with keys " in line, line
        return
    node = _field_schema(case)
    if case.expect == "union":
        assert "allowed: " in line and repr(case.value) in line, f"{case}: {line}"
        return
    if case.expect == "choices":
        assert all(repr(choice) in line for choice in node["enum"]), f"not every choice is named: {line}"
    elif case.expect == "pattern":
        assert f"String should match pattern '{node['pattern']}'" in line, line
    elif case.expect.startswith("bound:") or (case.expect == "type|bound" and "than" in line):
        keyword = case.expect.split(":")[1] if ":" in case.expect else next(
            k for k, words in _BOUND_WORDS.items() if k in node and f"{words} " in line)
        match = re.search(rf"{_BOUND_WORDS[keyword]} (-?[0-9.e+]+)", line)
        assert match and float(match.group(1)) == node[keyword], f"the bound {node[keyword]} is not named: {line}"
    else:  # a wrong type: the line says what the field allows, bounds and choices included
        assert "; allowed: " in line, f"{case}: {line}"
        allowed = line.split("; allowed: ", 1)[1]
        for keyword in _BOUND_WORDS:
            if keyword in node:
                assert f"{node[keyword]:g}" in allowed, f"{keyword} missing from {allowed!r}"


# ------------------------------------------------------------------ the three validation paths


@pytest.mark.parametrize("section", [None, *_stage_sections()], ids=lambda s: s or "top-level")
def test_every_invalid_value_is_refused_by_name(section, request):
    """parse_pipeline_config: ``<source>: <section>.<key>: <what is wrong and what is allowed>``."""
    cases = [c for c in CASES if c.section == section or (section is None and c.key == "no_such_section")]
    counts: Counter = Counter()
    for case in cases:
        with pytest.raises(ValueError) as err:
            parse_pipeline_config(_config_for(case), source=SOURCE)
        _check_message(str(err.value), case, f"{SOURCE}: ")
        counts[case.expect.split(":")[0]] += 1
    request.node.user_properties.append(("cases", len(cases)))
    print(f"fuzz config[{section or 'top-level'}]: {len(cases)} invalid values, all refused by name; {dict(counts)}")
    assert len(cases) >= 8


@pytest.mark.parametrize("section", list(_stage_sections()))
def test_stage_json_path_names_the_key(section):
    """``--config-json`` (what a rule passes): ``<section>: <key>: ...``; non-finite floats are not JSON."""
    model = _stage_sections()[section]
    n_cases = 0
    for case in CASES:
        if case.section != section or case.expect == "mapping":
            continue
        if isinstance(case.value, float) and not math.isfinite(case.value):
            continue
        with pytest.raises(ValueError) as err:
            parse_stage_config(model, json.dumps({case.key: case.value}), source=section)
        _check_message(str(err.value), case, f"{section}: ")
        n_cases += 1
    assert n_cases >= 3


def test_the_json_schema_flags_the_same_key(request):
    """Snakemake's ``validate`` against the generated schema points at the same key (NaN aside)."""
    validator = jsonschema.Draft202012Validator(pipeline_config_schema())
    counts: Counter = Counter()
    for case in CASES:
        errors = list(validator.iter_errors(_config_for(case)))
        if not errors:
            value = case.value  # JSON-schema bounds cannot see NaN, nor Inf on a side without a bound
            assert isinstance(value, float) and not math.isfinite(value), f"the schema accepts {case}"
            counts["non-finite: left to pydantic"] += 1
            continue
        paths = [list(e.absolute_path) for e in errors]
        expected = [case.section] if case.expect in ("extra", "mapping") and case.section else (
            [] if case.expect == "extra" else [p for p in (case.section, case.key) if p])
        assert expected in paths, f"{case}: schema errors at {paths}: {[e.message for e in errors]}"
        counts["flagged by the schema"] += 1
    request.node.user_properties.extend(counts.items())
    print(f"fuzz config schema: {len(CASES)} invalid values; {dict(counts)}")


def test_case_count(request):
    """The size of the generated set (the count in the issue's table)."""
    per_section = Counter(c.section or "top-level" for c in CASES)
    request.node.user_properties.append(("config_cases", len(CASES)))
    print(f"fuzz config: {len(CASES)} invalid values over {len(per_section)} sections: {dict(per_section)}")
    n_keys = sum(len(m.model_fields) for m in _stage_sections().values())
    assert len(CASES) >= 5 * n_keys  # at least five invalid values per key on average


def test_stage_models_are_all_reachable_from_the_config():
    """A stage model that config.yaml cannot set would escape this fuzzing (and the schema)."""
    unreachable = {m.__name__ for m in _all_stage_models()} - {m.__name__ for m in _stage_sections().values()}
    assert not unreachable, f"stage models missing from PipelineConfig: {sorted(unreachable)}"


# ------------------------------------------------------------------ random values


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def test_random_values_are_accepted_only_within_the_schema(request):
    """Any JSON value for any key: accepted only if the schema allows it (and finite); else refused by name."""
    sections = _stage_sections()
    keys = sorted((s, k) for s, m in sections.items() for k in m.model_fields)
    validator = jsonschema.Draft202012Validator(pipeline_config_schema())
    counts: Counter = Counter()
    cases = [0]

    choices = sorted({c for m in sections.values() for n in m.model_json_schema()["properties"].values()
                      for c in _resolve(n, m.model_json_schema().get("$defs", {}))[0].get("enum", [])})
    values = st.one_of(JSON_VALUES, st.integers(-300, 300), st.floats(-2.0, 300.0), st.sampled_from(choices))

    @given(where=st.sampled_from(keys), value=values)
    def run(where, value):
        cases[0] += 1
        section, key = where
        try:
            cfg = parse_pipeline_config({section: {key: value}}, source=SOURCE)
        except ValueError as err:
            assert str(err).startswith(f"{SOURCE}: {section}.{key}: "), str(err)
            counts["refused by name"] += 1
            return
        stored = getattr(getattr(cfg, section), key)
        assert not (isinstance(stored, float) and not math.isfinite(stored))
        dumped = cfg.model_dump(mode="json")
        assert not list(validator.iter_errors(dumped)), f"accepted {value!r} for {section}.{key} outside the schema"
        counts["accepted (valid)"] += 1

    settings(max_examples=400, **FUZZ)(run)()
    request.node.user_properties.extend(counts.items())
    print(f"fuzz config random: {cases[0]} cases; {dict(counts)}")
    assert cases[0] >= 400
