"""Per-rule projections (cryo_pipeline.config.reads / .projection) and the execution: section.

The declarations are checked from both sides: every stage test calls its stage through
``@reads`` (an undeclared read raises), and here every key of every science section must
be read by some rule, every rule with params must be declared, and a rule's params hold
only what it declares.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import yaml

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.execution import MOVED_KEYS, ExecutionConfig
from cryo_pipeline.config.pipeline import STAGE_SECTIONS, PipelineConfig, parse_pipeline_config
from cryo_pipeline.config.projection import (
    UndeclaredRead,
    config_json,
    declared_keys,
    declared_sheet,
    parse_config,
    parse_row,
    reads,
    row_json,
    view_config,
    view_row,
)
from cryo_pipeline.config.reads import STAGE_READS
from cryo_pipeline.config.stages import CnConfig, TrainConfig

REPO = Path(__file__).resolve().parents[2]
ROW = DatasetRow.model_validate({
    "dataset": "d", "kind": "synthetic", "source": "hollow_sphere", "voxel_size_angstrom": 8.0, "tilt_min_deg": -60,
    "tilt_max_deg": 55, "tilt_step_deg": 5, "corruption": "tiltseries", "snr": 2.0, "methods": "wbp,cn",
    "shape_px": "16x24x32", "seed": 3,
})


def _rules_in_workflow() -> dict[str, str]:
    """Rule name → its text, for every rule of workflow/rules/*.smk."""
    rules = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"(?m)^\s*(?:rule|checkpoint) (\w+):", path.read_text())
        rules.update(dict(zip(parts[1::2], parts[2::2], strict=True)))
    return rules


def test_every_rule_of_the_workflow_is_declared_and_passes_only_its_projection():
    rules = _rules_in_workflow()
    with_params = {name for name, text in rules.items() if "--dataset-json" in text or "--config-json" in text}
    assert with_params and with_params <= set(STAGE_READS) | {"report"}
    # the fetch rules pass the row as written in the sheet (its URLs / portal id), not the fetched paths
    for name in with_params - {"report", "fetch_dataset", "fetch_portal_tiltseries", "fetch_portal_tomogram"}:
        text = rules[name]
        if "--dataset-json" in text:
            assert f'dataset=sheet_row("{name}")' in text, name
        if "--config-json" in text:
            assert f'config=stage_config("{name}")' in text, name
    for name, text in rules.items():  # run-time settings never as params
        params = text.split("params:")[1].split("log:")[0] if "params:" in text else ""
        assert "execution" not in params.lower() and "EXECUTION" not in params, name


def test_every_key_of_every_science_section_is_read_by_some_rule():
    read = {(entry.section, key) for rule, entry in STAGE_READS.items() if entry.section
            for key in declared_keys(rule)}
    for section in STAGE_SECTIONS:
        if section == "report":  # the report rule shows the whole science config
            continue
        model = type(getattr(PipelineConfig(), section))
        unread = [key for key in model.model_fields if (section, key) not in read]
        assert not unread, f"{section}: {unread} are read by no rule; declare them in config/reads.py"


def test_declared_names_exist():
    for rule, entry in STAGE_READS.items():
        assert set(entry.sheet) <= set(DatasetRow.model_fields), rule
        if entry.section:
            model = type(getattr(PipelineConfig(), entry.section))
            assert set(declared_keys(rule)) <= set(model.model_fields), rule


def test_a_rules_params_hold_only_its_declared_values():
    row = json.loads(row_json("project_tilt_series", ROW))
    assert row == {"dataset": "d", "tilt_min_deg": -60.0, "tilt_max_deg": 55.0, "tilt_step_deg": 5.0, "snr": 2.0,
                   "seed": 3, "reference_tilt_min_deg": None, "reference_tilt_max_deg": None}
    assert "methods" not in row_json("evaluate", ROW)  # no rule reads methods: adding one reruns nothing
    assert not any("methods" in entry.sheet for entry in STAGE_READS.values())
    cfg = PipelineConfig()
    assert set(json.loads(config_json("plan_slabs", cfg))) == set(declared_keys("plan_slabs"))
    assert "slab_iterations" not in config_json("plan_slabs", cfg)
    assert config_json("stitch_cryogen", cfg) == "" and config_json("collect_metrics", cfg) == ""
    # the same value reruns nothing: the JSON is the same string for an equal projection
    other = ROW.model_copy(update={"methods": ("wbp",), "mask": "user_mask.mrc"})  # mask: an input, not a param
    assert all(row_json(rule, other) == row_json(rule, ROW) for rule in STAGE_READS)


def test_views_expose_declared_values_and_derived_properties_only():
    view = view_row("evaluate", ROW)
    assert view.dataset == "d" and view.effective_kind == "synthetic"
    assert list(view.nominal_angles_deg(default_step_deg=1.0)[:2]) == [-60.0, -55.0]
    assert view.model_dump(mode="json") == json.loads(row_json("evaluate", ROW))
    with pytest.raises(UndeclaredRead, match=r"rule evaluate reads sheet column snr, which it does not declare: "
                                             r"add it to STAGE_READS\['evaluate'\] in cryo_pipeline/config/reads\.py"):
        _ = view.snr
    cfg = view_config("plan_slabs", CnConfig(width=32))
    assert cfg.width == 32 and cfg.model_copy(update={"slab_px": 3}).slab_px == 3
    with pytest.raises(UndeclaredRead, match=r"config key cn\.loss"):
        _ = cfg.loss
    with pytest.raises(UndeclaredRead):
        cfg.model_copy(update={"loss": "l2"})
    with pytest.raises(TypeError, match="read-only"):
        cfg.width = 3
    assert pickle.loads(pickle.dumps(cfg)).model_dump() == cfg.model_dump()
    with pytest.raises(TypeError, match="reads TrainConfig, got CnConfig"):
        view_config("train_cryogen", CnConfig())
    with pytest.raises(UndeclaredRead, match="needs tilt_step_deg"):  # a narrower view cannot widen
        view_row("project_tilt_series", view_row("reconstruct_wbp", ROW))


def test_a_decorated_stage_sees_only_its_projection():
    @reads("reconstruct_wbp")
    def stage(*, dataset, cfg):
        return dataset.tilt_min_deg, cfg.filter, dataset.snr

    with pytest.raises(UndeclaredRead, match="reconstruct_wbp reads sheet column snr"):
        stage(dataset=ROW, cfg=PipelineConfig().wbp)


def test_commands_read_a_projection_or_a_whole_row():
    projected = parse_row(row_json("simulate_volume", ROW), "simulate_volume")
    whole = parse_row(ROW.model_dump_json(), "simulate_volume")
    assert projected.model_dump() == whole.model_dump() and projected.shape_px == (16, 24, 32)
    assert parse_row('{"dataset": "x", "kind": "synthetic", "source": "hollow_sphere", "shape_px": "8"}',
                     "simulate_volume").shape_px == (8, 8, 8)
    with pytest.raises(ValueError, match=r"--dataset-json: tilt_max_deg: Field required"):
        parse_row('{"dataset": "x", "tilt_min_deg": 3}', "apply_fourier_wedge")
    with pytest.raises(ValueError, match="tilt_min_deg .* must be < tilt_max_deg"):  # a whole row: whole-row checks
        parse_row(json.dumps({**ROW.model_dump(mode="json"), "tilt_min_deg": 60}), "apply_fourier_wedge")
    cfg = parse_config('{"width": 16}', "fit_slab")
    assert cfg.width == 16 and cfg.slab_iterations == CnConfig().slab_iterations
    with pytest.raises(ValueError, match=r"cn: cn\.device moved to execution\.device"):
        parse_config('{"device": "cpu"}', "fit_slab")
    assert parse_config("", "collect_metrics") is None


@pytest.mark.parametrize(("section", "key"), sorted(MOVED_KEYS))
def test_moved_keys_fail_naming_their_new_place(section, key):
    target = MOVED_KEYS[(section, key)]
    value = "cpu" if key == "device" else 2 if "workers" in key or "n_jobs" in key else "x"
    with pytest.raises(ValueError, match=rf"^my\.yaml: {section}\.{key} moved to {re.escape(target)} "):
        parse_pipeline_config({section: {key: value}}, source="my.yaml")
    assert target.split(".")[1] in ExecutionConfig.model_fields


def test_execution_is_in_no_section_and_the_report_sees_science_only():
    cfg = parse_pipeline_config({"execution": {"device": "cpu", "predict_n_jobs": 2}})
    assert cfg.execution.device == "cpu" and "execution" not in json.loads(cfg.science_json())
    for section in STAGE_SECTIONS:
        model = type(getattr(cfg, section))
        assert not set(model.model_fields) & {"device", "n_jobs", "cluster", "scheduler_address"}, section


def test_every_shipped_config_validates():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in sorted((REPO / "config").glob("*.yaml")):
        override = yaml.safe_load(path.read_text()) or {}
        merged = {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in override.items()}}
        parse_pipeline_config(merged, source=str(path))
