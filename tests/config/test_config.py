"""Config models: defaults match config/config.yaml, unknown keys and bad values are named,
the committed JSON schema is in sync, dataset-sheet rows are checked row by row."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from cryo_pipeline.config.dataset import PHANTOM_NAMES, DatasetRow, parse_shape_px
from cryo_pipeline.config.pipeline import (
    STAGE_SECTIONS,
    PipelineConfig,
    format_validation_error,
    load_pipeline_config,
    parse_pipeline_config,
    parse_stage_config,
)
from cryo_pipeline.config.schema import pipeline_config_schema, render_schema_yaml
from cryo_pipeline.config.stages import EvaluateConfig, SimulateConfig, WbpConfig
from cryo_pipeline.io.fetch import sha256_file
from cryo_pipeline.io.sheet import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, read_dataset_sheet

REPO = Path(__file__).resolve().parents[2]
CONFIG_YAML = REPO / "config" / "config.yaml"
SCHEMA_YAML = REPO / "workflow" / "schemas" / "config.schema.yaml"
SHEET = REPO / "config" / "datasets.tsv"


# the sections where the demo runs at CPU scale instead of the papers' defaults, and the keys it changes
DEMO_OVERRIDES = {
    "train": {"crop_px", "base_channels", "depth", "batch_size", "epochs", "steps_per_epoch", "learning_rate",
              "learning_rate_energy"},
    "cn": {"width", "n_hidden_layers", "slab_px", "halo_px", "seed_iterations", "seed_lr_end", "slab_iterations",
           "slab_lr_start", "slab_lr_end", "rows_per_step"},
}


# --- PipelineConfig ------------------------------------------------------------------------
def test_defaults_equal_the_shipped_config_yaml():
    shipped = yaml.safe_load(CONFIG_YAML.read_text())
    loaded = load_pipeline_config(CONFIG_YAML)
    # the file spells out every key the models know (it doubles as the documentation)
    defaults = PipelineConfig().model_dump(mode="json")
    missing = sorted(set(defaults) - set(shipped))
    assert not missing, f"config/config.yaml lacks section(s) {missing}; it should spell out every default"
    assert set(shipped) == set(defaults)
    for section in (*STAGE_SECTIONS, "execution"):
        assert set(shipped[section]) == set(defaults[section]), section
        differing = {k for k in defaults[section] if shipped[section][k] != defaults[section][k]}
        assert differing == DEMO_OVERRIDES.get(section, set()), section
    assert loaded.model_copy(update={"train": PipelineConfig().train, "cn": PipelineConfig().cn}) == PipelineConfig()


def test_stage_sections_are_the_models_sections():
    nested = {name for name in PipelineConfig.model_fields if name not in ("run", "datasets", "execution")}
    assert nested == set(STAGE_SECTIONS)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"wbp": {"filtr": "ramp"}}, "wbp.filtr"),
        ({"runn": "demo"}, "runn"),
        ({"simulate": {"map_rotation": True}}, "simulate.map_rotation"),
    ],
)
def test_unknown_keys_are_rejected_by_name(data, key):
    with pytest.raises(ValueError, match=rf"^my\.yaml: {key}: Extra inputs are not permitted"):
        parse_pipeline_config(data, source="my.yaml")


@pytest.mark.parametrize(
    ("data", "key", "value"),
    [
        ({"simulate": {"map_interpolation_order": 6}}, "simulate.map_interpolation_order", "6"),
        ({"simulate": {"map_interpolation_order": -1}}, "simulate.map_interpolation_order", "-1"),
        ({"fourier_wedge": {"soft_edge_deg": 30.5}}, "fourier_wedge.soft_edge_deg", "30.5"),
        ({"fourier_wedge": {"soft_edge_deg": -0.1}}, "fourier_wedge.soft_edge_deg", "-0.1"),
        ({"project": {"detector_width_px": 0}}, "project.detector_width_px", "0"),
        ({"wbp": {"filter": "butterworth"}}, "wbp.filter", "'butterworth'"),
        ({"wbp": {"thickness_px": 0}}, "wbp.thickness_px", "0"),
        ({"evaluate": {"default_tilt_step_deg": 0}}, "evaluate.default_tilt_step_deg", "0"),
        ({"evaluate": {"default_tilt_step_deg": 10.5}}, "evaluate.default_tilt_step_deg", "10.5"),
        ({"run": "my run"}, "run", "'my run'"),
    ],
)
def test_bounds_are_enforced_and_named(data, key, value):
    with pytest.raises(ValueError) as caught:
        parse_pipeline_config(data, source="c.yaml")
    message = str(caught.value)
    assert message.startswith(f"c.yaml: {key}: ")
    assert message.endswith(f"(got {value})")


def test_boundary_values_are_accepted():
    cfg = parse_pipeline_config(
        {
            "simulate": {"map_interpolation_order": 0},
            "fourier_wedge": {"soft_edge_deg": 30.0},
            "evaluate": {"default_tilt_step_deg": 10.0},
            "wbp": {"filter": "hann", "thickness_px": 1},
        }
    )
    assert cfg.simulate.map_interpolation_order == 0
    assert cfg.fourier_wedge.soft_edge_deg == 30.0
    assert cfg.evaluate.default_tilt_step_deg == 10.0
    assert (cfg.wbp.filter, cfg.wbp.thickness_px) == ("hann", 1)


def test_configs_are_frozen():
    cfg = PipelineConfig()
    with pytest.raises(ValidationError):
        cfg.wbp.filter = "hann"


def test_stage_config_from_json():
    assert parse_stage_config(WbpConfig, "", source="wbp") == WbpConfig()
    assert parse_stage_config(WbpConfig, '{"thickness_px": 32}', source="wbp").thickness_px == 32
    with pytest.raises(ValueError, match=r"^wbp: filtr: Extra inputs are not permitted \(got 'ramp'\)$"):
        parse_stage_config(WbpConfig, '{"filtr": "ramp"}', source="wbp")
    with pytest.raises(ValueError, match=r"^evaluate: windowed_ssim: "):
        parse_stage_config(EvaluateConfig, '{"windowed_ssim": "maybe"}', source="evaluate")


def test_several_problems_are_all_reported():
    with pytest.raises(ValueError) as caught:
        parse_pipeline_config({"wbp": {"filtr": "ramp", "thickness_px": -3}, "simulate": {"x": 1}}, source="c")
    message = str(caught.value)
    for key in ("wbp.filtr", "wbp.thickness_px", "simulate.x"):
        assert f"c: {key}: " in message
    assert "\n" not in message


def test_load_pipeline_config_file_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match=f"config file {missing} does not exist"):
        load_pipeline_config(missing)
    listed = tmp_path / "list.yaml"
    listed.write_text("- run\n- demo\n")
    with pytest.raises(ValueError, match=rf"{listed}: top level must be a mapping of keys, got list"):
        load_pipeline_config(listed)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n")
    assert load_pipeline_config(empty) == PipelineConfig()
    partial = tmp_path / "partial.yaml"
    partial.write_text("run: r2\nwbp:\n  filter: cosine\n")
    cfg = load_pipeline_config(partial)
    assert (cfg.run, cfg.wbp.filter, cfg.wbp.thickness_px) == ("r2", "cosine", None)


# --- schema ----------------------------------------------------------------------------------
def test_committed_schema_is_in_sync_with_the_models():
    assert SCHEMA_YAML.read_text() == render_schema_yaml(), (
        "workflow/schemas/config.schema.yaml is stale; regenerate it with `cryo-pipeline export-schema`"
    )


def test_schema_accepts_the_shipped_config_and_rejects_unknown_keys():
    schema = yaml.safe_load(SCHEMA_YAML.read_text())
    assert schema == pipeline_config_schema()
    assert "$defs" not in schema and "$ref" not in SCHEMA_YAML.read_text()
    jsonschema.validate(yaml.safe_load(CONFIG_YAML.read_text()), schema)
    for bad in ({"wbp": {"filtr": "ramp"}}, {"runn": "x"}, {"simulate": {"map_interpolation_order": 7}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


# --- DatasetRow ------------------------------------------------------------------------------
BASE = {
    "dataset": "d1",
    "kind": "synthetic",
    "source": "hollow_sphere",
    "voxel_size_angstrom": 10.0,
    "tilt_min_deg": -60,
    "tilt_max_deg": 60,
    "tilt_step_deg": 2,
    "corruption": "tiltseries",
    "methods": "wbp",
}


EMPIAR_URL = "https://ftp.ebi.ac.uk/empiar/world_availability/10045/data/ribosomes/Tomograms/11/IS002_291013_011.mrcs"
EMPIAR = {"kind": "empiar", "corruption": None, "tilt_step_deg": None, "data_kind": "tiltseries",
          "source": EMPIAR_URL, "angles": EMPIAR_URL.replace(".mrcs", ".tlt")}


def _row(**changes) -> DatasetRow:
    values = {**BASE, **changes}
    return DatasetRow.model_validate({k: v for k, v in values.items() if v is not None})


def test_a_valid_row():
    row = _row(methods="wbp, cryogen", shape_px="32x48x64", seed=3)
    assert row.methods == ("wbp", "cryogen")
    assert row.shape_px == (32, 48, 64)
    assert row.is_phantom and row.has_ground_truth and row.has_tilt_series


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"voxel_size_angstrom": None}, r"phantom 'hollow_sphere' has no voxel size; set voxel_size_angstrom"),
        ({"corruption": "fourier"}, r"method 'wbp' needs a tilt series, but corruption is 'fourier'"),
        ({"corruption": None}, r"synthetic datasets need corruption"),
        ({"tilt_step_deg": None}, r"corruption 'tiltseries' needs tilt_step_deg"),
        ({"methods": "wbp,wbp"}, r"methods wbp,wbp repeat a method"),
        ({"methods": "wbp,foo"}, r"methods\.1: Input should be 'wbp', 'isonet', 'cryogen' or 'cn'"),
        ({"source": "hollow_spere"}, r"source 'hollow_spere' is neither a phantom \(hollow_sphere, "),
        ({"tilt_min_deg": 60}, r"tilt_min_deg \(60\.0\) must be < tilt_max_deg \(60\.0\)"),
        ({"tilt_min_deg": -95}, r"tilt_min_deg: Input should be greater than or equal to -90"),
        ({"tilt_max_deg": 90.5}, r"tilt_max_deg: Input should be less than or equal to 90"),
        ({"voxel_size_angstrom": 0}, r"voxel_size_angstrom: Input should be greater than 0"),
        ({"snr": 0}, r"snr: Input should be greater than 0"),
        ({"dataset": "bad name"}, r"dataset: String should match pattern"),
        ({"kind": "movie"}, r"kind: Input should be 'synthetic', 'tiltseries', 'tomogram', 'empiar' or 'portal'"),
        ({"kind": "empiar", "corruption": None, "source": EMPIAR_URL},
         r"dataset d1: kind 'empiar' needs data_kind 'tiltseries' or 'tomogram' \(what the source file is\)"),
        ({**EMPIAR, "source": "ftp://ftp.ebi.ac.uk/empiar/x.mrcs"},
         r"source 'ftp://ftp\.ebi\.ac\.uk/empiar/x\.mrcs' uses scheme 'ftp'; fetch_dataset reads http, https, file"),
        ({**EMPIAR, "source": "https://ftp.ebi.ac.uk/empiar/10045/data/"},
         r"source 'https://ftp\.ebi\.ac\.uk/empiar/10045/data/' does not end in a file name"),
        ({**EMPIAR, "source": "https://ftp.ebi.ac.uk/empiar/10045/data/ts.tif"},
         r"source file 'ts\.tif' must end in one of \.mrc, \.map, \.rec, \.mrcs, \.st, \.ali"),
        ({**EMPIAR, "angles": "https://ftp.ebi.ac.uk/empiar/10045/data/ts.txt"},
         r"angles file 'ts\.txt' must end in one of \.tlt, \.rawtlt, \.mdoc"),
        ({**EMPIAR, "angles": None}, r"dataset d1: a tiltseries dataset needs an angles file"),
        ({**EMPIAR, "data_kind": "tomogram"}, r"dataset d1: methods wbp and cn need a tilt series; a tomogram has"),
        ({**EMPIAR, "data_kind": "movie"}, r"data_kind: Input should be 'tiltseries' or 'tomogram'"),
        ({**EMPIAR, "sha256": "abc"}, r"sha256: String should match pattern"),
        ({**EMPIAR, "corruption": "fourier"}, r"corruption applies to synthetic datasets only \(kind is empiar\)"),
        ({"data_kind": "tiltseries"}, r"dataset d1: column data_kind applies to kinds 'empiar'/'portal' only \(kind is synthe"),
        ({"sha256": "a" * 64}, r"dataset d1: column sha256 applies to kind 'empiar' only"),
        ({"kind": "tiltseries", "source": "ts.mrc", "angles": "ts.tlt"}, r"corruption applies to synthetic"),
        ({"kind": "tiltseries", "source": "ts.mrc", "corruption": None}, r"needs an angles file"),
        ({"kind": "tomogram", "source": "t.mrc", "corruption": None, "methods": "cn"}, r"methods wbp and cn need"),
        ({"kind": "tomogram", "source": "t.mrc", "corruption": None, "methods": "cryogen", "shape_px": "64"},
         r"shape_px applies to phantoms only"),
        ({"shape_px": "abc"}, r"shape_px 'abc' must be one integer or three joined by 'x'"),
        ({"shape_px": "7"}, r"shape_px '7' must give 3 sizes between 8 and 4096"),
        ({"extra_column": 1}, r"extra_column: Extra inputs are not permitted"),
    ],
)
def test_dataset_row_rules(changes, pattern):
    with pytest.raises(ValidationError) as caught:
        _row(**changes)
    message = format_validation_error(caught.value, source="sheet")
    assert message.startswith("sheet: ")
    assert re.search(pattern, message), message


def test_dataset_row_accepts_maps_tomograms_and_full_range():
    real_map = _row(source="/data/emd_1234.MAP", voxel_size_angstrom=None, corruption="fourier", methods=None)
    assert not real_map.is_phantom and real_map.voxel_size_angstrom is None
    tomo = _row(kind="tomogram", source="t.rec", corruption=None, methods="cryogen,isonet", tilt_step_deg=None)
    assert not tomo.has_ground_truth and not tomo.has_tilt_series
    full = _row(tilt_min_deg=-90, tilt_max_deg=90)
    assert (full.tilt_min_deg, full.tilt_max_deg) == (-90.0, 90.0)


def test_an_empiar_row_is_treated_like_its_data_kind():
    series = _row(**EMPIAR, sha256="AB" * 32)
    assert (series.effective_kind, series.has_tilt_series, series.needs_subtomograms) == ("tiltseries", True, False)
    assert not series.has_ground_truth and series.sha256 == "AB" * 32
    assert series.fetched_files() == {"source": "resources/d1/IS002_291013_011.mrcs",
                                      "angles": "resources/d1/IS002_291013_011.tlt"}
    local = series.with_fetched_paths("res")
    assert (local.kind, local.source, local.angles) == ("empiar", "res/d1/IS002_291013_011.mrcs",
                                                        "res/d1/IS002_291013_011.tlt")
    tomo = _row(**{**EMPIAR, "data_kind": "tomogram", "angles": None, "methods": "cryogen",
                   "source": "file:///mirror/10164/TS_01-wbp.rec"})
    assert (tomo.effective_kind, tomo.has_tilt_series, tomo.needs_subtomograms) == ("tomogram", False, True)
    assert tomo.fetched_files() == {"source": "resources/d1/TS_01-wbp.rec"}


def test_empiar_file_names_are_plain_and_decoded():
    with pytest.raises(ValidationError, match=r"source 'file:///mirror/TS%2001\.rec' does not end in a file name"):
        _row(**{**EMPIAR, "data_kind": "tomogram", "angles": None, "methods": "cryogen",
                "source": "file:///mirror/TS%2001.rec"})
    row = _row(**{**EMPIAR, "source": "/mirror/10045/ts_10.00Apx.mrcs", "angles": "https://h/a%2Bb.rawtlt"})
    assert row.fetched_files() == {"source": "resources/d1/ts_10.00Apx.mrcs", "angles": "resources/d1/a+b.rawtlt"}
    same = {**EMPIAR, "angles": "https://h/x.tlt", "source": "https://h/x.tlt"}
    with pytest.raises(ValidationError, match=r"source file 'x\.tlt' must end in one of"):
        _row(**same)


def test_other_kinds_are_unchanged_by_with_fetched_paths():
    row = _row()
    assert row.effective_kind == "synthetic" and row.fetched_files() == {} and row.with_fetched_paths() is row


@pytest.mark.parametrize(
    ("text", "shape"),
    [("64", (64, 64, 64)), ("32x64x64", (32, 64, 64)), ("32X48x64", (32, 48, 64)), ("8,16,4096", (8, 16, 4096)),
     (" ", None), (None, None), (24, (24, 24, 24))],
)
def test_parse_shape_px(text, shape):
    assert parse_shape_px(text) == shape


@pytest.mark.parametrize("text", ["abc", "64x64", "7", "0x64x64", "64x64x4097", "32x64x64x64", "6.5", "-64"])
def test_parse_shape_px_rejects(text):
    with pytest.raises(ValueError, match=rf"shape_px {text!r} must"):
        parse_shape_px(text)


def test_nominal_angles_include_both_ends():
    row = _row(tilt_min_deg=-60, tilt_max_deg=60, tilt_step_deg=7)
    angles = row.nominal_angles_deg(default_step_deg=1.0)
    assert angles[0] == -60.0 and angles[-1] == 60.0
    np.testing.assert_allclose(np.diff(angles)[:-1], 7.0)
    assert angles.size == 19  # -60, -53, ..., 59, then 60
    forced = row.nominal_angles_deg(default_step_deg=0.5, force_step=True)
    assert forced.size == 241


# --- read_dataset_sheet ------------------------------------------------------------------------
HEADER = "\t".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)


def _sheet(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join((header, *rows)) + "\n")
    return path


# columns: dataset kind source voxel tmin tmax step corruption snr methods angles seed shape_px
PHANTOM_ROW = "ph\tsynthetic\thollow_sphere\t10\t-60\t60\t2\ttiltseries\t\twbp\t\t\t32"
MAP_ROW = "mp\tsynthetic\tmaps/beta.mrc\t\t-45\t60\t\tfourier\t\t\t\t4\t"
TS_ROW = "ts\ttiltseries\t../raw/ts.mrc\t33.6\t-60\t60\t\t\t\twbp\tts.rawtlt\t\t"
ABS_ROW = "ab\ttomogram\t/abs/tomo.rec\t10.52\t-60\t60\t\t\t\tcryogen\t\t\t"
URL_ROW = "url\ttomogram\thttps://example.org/t.mrc\t10\t-60\t60\t\t\t\t\t\t\t"


def test_sheet_resolves_relative_paths_against_its_folder(tmp_path):
    sheet = _sheet(tmp_path / "cfg" / "sheet.tsv", PHANTOM_ROW, MAP_ROW, TS_ROW, ABS_ROW, URL_ROW)
    rows = {r.dataset: r for r in read_dataset_sheet(sheet)}
    assert list(rows) == ["ph", "mp", "ts", "ab", "url"]
    folder = (tmp_path / "cfg").resolve()
    assert rows["ph"].source == "hollow_sphere"
    assert rows["ph"].shape_px == (32, 32, 32) and rows["ph"].snr is None and rows["ph"].seed == 0
    assert rows["mp"].source == str(folder / "maps" / "beta.mrc")
    assert rows["mp"].seed == 4 and rows["mp"].voxel_size_angstrom is None and rows["mp"].methods == ()
    assert rows["ts"].source == str((tmp_path / "raw" / "ts.mrc").resolve())
    assert rows["ts"].angles == str(folder / "ts.rawtlt")
    assert rows["ab"].source == "/abs/tomo.rec"
    assert rows["url"].source == "https://example.org/t.mrc"


def test_sheet_skips_comment_lines_and_strips_cells(tmp_path):
    sheet = _sheet(tmp_path / "s.tsv", "# a comment line", PHANTOM_ROW.replace("\t10\t", "\t 10 \t"))
    (row,) = read_dataset_sheet(sheet)
    assert row.voxel_size_angstrom == 10.0


def test_sheet_rejects_duplicate_names(tmp_path):
    sheet = _sheet(tmp_path / "s.tsv", PHANTOM_ROW, MAP_ROW, PHANTOM_ROW.replace("\t32", "\t16"))
    with pytest.raises(ValueError, match=rf"^{sheet}: dataset names repeat: ph$"):
        read_dataset_sheet(sheet)


def test_sheet_rejects_unknown_and_missing_columns(tmp_path):
    unknown = _sheet(tmp_path / "u.tsv", PHANTOM_ROW + "\tx", header=HEADER + "\tvoxel_size")
    with pytest.raises(ValueError, match=rf"^{unknown}: unknown column\(s\) voxel_size; allowed: dataset, "):
        read_dataset_sheet(unknown)
    header = "\t".join(c for c in REQUIRED_COLUMNS if c != "snr")
    missing = _sheet(tmp_path / "m.tsv", "ph\tsynthetic\thollow_sphere\t10\t-60\t60\t2\ttiltseries\twbp", header=header)
    with pytest.raises(ValueError, match=rf"^{missing}: missing column\(s\) snr$"):
        read_dataset_sheet(missing)
    empty = _sheet(tmp_path / "e.tsv")
    with pytest.raises(ValueError, match="the sheet has no datasets"):
        read_dataset_sheet(empty)
    with pytest.raises(FileNotFoundError, match="config key 'datasets'"):
        read_dataset_sheet(tmp_path / "absent.tsv")


def test_sheet_reports_every_bad_row_with_its_line(tmp_path):
    bad_range = PHANTOM_ROW.replace("\t-60\t", "\t-95\t")
    bad_order = MAP_ROW.replace("\t-45\t60\t", "\t30\t30\t")
    sheet = _sheet(tmp_path / "s.tsv", bad_range, TS_ROW, bad_order)
    with pytest.raises(ValueError) as caught:
        read_dataset_sheet(sheet)
    message = str(caught.value)
    assert f"{sheet} line 2 (ph): tilt_min_deg: Input should be greater than or equal to -90 (got '-95')" in message
    assert f"{sheet} line 4 (mp): dataset mp: tilt_min_deg (30.0) must be < tilt_max_deg (30.0)" in message
    assert "line 3" not in message
    assert "'kind'" not in message  # the whole row is not dumped into the message


def test_shipped_sheet_is_valid():
    rows = read_dataset_sheet(SHEET)
    assert [r.dataset for r in rows] == ["sphere64_fourier", "shapes_tiltseries", "sphere64_tiltseries"]
    assert all(r.source in PHANTOM_NAMES and r.voxel_size_angstrom == 10.0 for r in rows)
    assert rows[1].shape_px == (48, 64, 64)


@pytest.mark.parametrize(
    ("config_name", "n_rows"),
    [("config.yaml", 3), ("config_real.yaml", 4), ("config_local.yaml", 8), ("config_empiar.yaml", 1),
     ("paper.yaml", 2)],
)
def test_every_shipped_config_names_a_valid_sheet(monkeypatch, config_name, n_rows):
    monkeypatch.chdir(REPO)  # sheet paths in the configs are relative to the workflow folder
    cfg = load_pipeline_config(Path("config") / config_name)
    assert len(read_dataset_sheet(Path(cfg.datasets))) == n_rows


def test_the_empiar_sheet_and_its_10164_template(tmp_path):
    lines = (REPO / "config" / "empiar.tsv").read_text().splitlines()
    (ribo,) = read_dataset_sheet(REPO / "config" / "empiar.tsv")
    assert (ribo.dataset, ribo.kind, ribo.effective_kind, ribo.methods) == (
        "empiar10045_ribo_ts11", "empiar", "tiltseries", ("wbp",))
    assert ribo.source == ("https://ftp.ebi.ac.uk/empiar/world_availability/10045/data/ribosomes/Tomograms/11/"
                           "IS002_291013_011.mrcs")
    assert ribo.angles == ribo.source.replace(".mrcs", ".tlt")
    assert (ribo.voltage_kv, ribo.cs_mm, ribo.voxel_size_angstrom, ribo.defocus_angstrom) == (300, 2.7, None, None)
    # EMPIAR-10164 has no aligned stack or tomogram to fetch: its row is a template that validates once enabled
    header = next(line for line in lines if line.startswith("dataset\t"))
    template = next(line[2:] for line in lines if line.startswith("# empiar10164_hiv_ts01\t"))
    (hiv,) = read_dataset_sheet(_sheet(tmp_path / "config" / "empiar.tsv", template, header=header))
    assert (hiv.effective_kind, hiv.voxel_size_angstrom, hiv.defocus_angstrom) == ("tomogram", 10.8, 38838.26)
    assert (hiv.voltage_kv, hiv.cs_mm, hiv.methods) == (300, 2.7, ("isonet", "cryogen"))
    assert hiv.fetched_files() == {"source": "resources/empiar10164_hiv_ts01/TS01-wbp.rec"}


def test_the_local_sheet_holds_the_real_rows_the_benchmarks_and_a_checked_local_fetch():
    rows = {r.dataset: r for r in read_dataset_sheet(REPO / "config" / "datasets_local.tsv")}
    for row in (*read_dataset_sheet(REPO / "config" / "datasets_real.tsv"), *read_dataset_sheet(SHEET)):
        assert rows.pop(row.dataset) == row
    (fetched,) = rows.values()
    assert (fetched.dataset, fetched.kind, fetched.effective_kind) == ("needle_stem_fetched", "empiar", "tiltseries")
    stack = Path(fetched.source)
    assert stack == (REPO.parent / "shared" / "data" / "real" / "tiltseries_haadf_needle_etspy.mrc").resolve()
    if stack.is_file():  # the MANIFEST's sha256, which fetch_dataset checks
        assert sha256_file(stack) == fetched.sha256


def test_simulate_config_defaults_are_the_papers_protocol():
    cfg = SimulateConfig()
    assert cfg.map_random_rotation and cfg.map_normalize and cfg.map_interpolation_order == 3
