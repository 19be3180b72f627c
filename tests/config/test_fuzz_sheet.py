"""Dataset-sheet fuzzing (issue 8, item 2): every invalid cell, row and layout is refused by name.

Invalid cell values are derived generically from :class:`DatasetRow`'s JSON schema (bounds,
choices, patterns, types, required cells left empty), plus the rules that span columns
(tilt range order, kind/corruption/method combinations, CTF columns), plus the layout of
the file itself (empty file, comments only, wrong delimiter, unknown/missing/repeated
columns, extra cells, duplicate names, non-UTF-8). The contract for
:func:`read_dataset_sheet`:

* a bad value: ``<sheet> line <n> (<dataset>): <column>: <what is wrong, what is allowed>``,
  where ``<n>`` is the line in the file (comment lines counted);
* a rule across columns: the same label, then a sentence naming the columns involved;
* a bad layout: ``<sheet>: ...`` naming the column or line.

Valid oddities (BOM, CRLF, quoted cells, trailing tabs, short lines, paths with spaces,
dots or ``#``) must read correctly. New columns are picked up without editing this file.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryo_pipeline.cli.main import main
from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.io.sheet import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, read_dataset_sheet

FUZZ = {"derandomize": True, "database": None, "deadline": None, "print_blob": False,
        "suppress_health_check": [HealthCheck.too_slow]}
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# a valid synthetic row that sets every column it may (paths and kind-specific columns stay empty)
GOOD = {"dataset": "good", "kind": "synthetic", "source": "hollow_sphere", "voxel_size_angstrom": "10",
        "tilt_min_deg": "-60", "tilt_max_deg": "60", "tilt_step_deg": "2", "corruption": "tiltseries", "snr": "5",
        "methods": "wbp", "seed": "1", "shape_px": "16", "voltage_kv": "300", "cs_mm": "2.7",
        "defocus_angstrom": "20000", "amplitude_contrast": "0.07", "phase_shift_deg": "0", "phase_flipped": "false"}
PREAMBLE = "# a comment line, so that line numbers are the file's\n\n"
_BOUND_WORDS = {"minimum": "greater than or equal to", "exclusiveMinimum": "greater than",
                "maximum": "less than or equal to", "exclusiveMaximum": "less than"}


def _row_text(values: dict[str, str]) -> str:
    return "\t".join(values.get(c, "") for c in COLUMNS)


def _write(path: Path, *rows: dict[str, str]) -> Path:
    """A sheet: a comment, a blank line, the header (line 3), then one line per row (line 4 on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PREAMBLE + "\n".join(["\t".join(COLUMNS), *(_row_text(r) for r in rows)]) + "\n")
    return path


def _schema() -> tuple[dict, dict]:
    schema = DatasetRow.model_json_schema(mode="validation")
    return schema["properties"], schema.get("$defs", {})


def _value_schema(column: str) -> tuple[dict, bool]:
    properties, defs = _schema()
    node = properties[column]
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        return branches[0], len(branches) < len(node["anyOf"])
    return node, False


def _number(value: float, integer: bool) -> str:
    return str(int(value)) if integer else repr(float(value))


def invalid_cells(column: str) -> list[tuple[str, str]]:
    """(cell text, what the message must name) for one column, from its schema."""
    node, nullable = _value_schema(column)
    required = column in DatasetRow.model_fields and DatasetRow.model_fields[column].is_required()
    cases = [("", "required")] if required else []
    kind = node.get("type")
    if "enum" in node:
        return cases + [(bad, "choices") for bad in ("not-a-choice", str(node["enum"][0]).upper(), "0")
                        if bad not in node["enum"]]
    if kind == "array" and "enum" in node.get("items", {}):  # methods: a comma list of choices
        return cases + [("not-a-method", "choices"), ("wbp,not-a-method", "choices"), ("wbp;isonet", "choices")]
    if kind in ("integer", "number"):
        integer = kind == "integer"
        for keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            if keyword in node:
                bound, below = node[keyword], keyword in ("minimum", "exclusiveMinimum")
                if keyword.startswith("exclusive"):
                    beyond = bound
                elif integer:
                    beyond = bound - 1 if below else bound + 1
                else:
                    beyond = math.nextafter(bound, -math.inf if below else math.inf)
                cases += [(_number(beyond, integer), f"bound:{keyword}"),
                          (_number(bound - 1e6 if below else bound + 1e6, integer), f"bound:{keyword}")]
        cases += [("abc", "type"), ("1,5", "type"), ("12 A", "type")]
        cases += [("2.5", "type")] if integer else [("nan", "bound")]
        return cases
    if kind == "boolean":
        return cases + [("maybe", "type"), ("2", "type"), ("ja", "type")]
    if kind == "string" and "pattern" in node:
        return cases + [(bad, "pattern") for bad in ("has space", "-dash", "a/b", "x;y", "Ω") if
                        not re.search(node["pattern"], bad)]
    if kind == "array" and "prefixItems" in node:  # shape_px: '64' or 'ZxYxX'
        return cases + [(bad, "shape") for bad in ("abc", "64x64", "7", "0x64x64", "64x64x4097", "6.5", "-64")]
    return cases  # free text (paths): nothing is invalid at sheet time


# rules across columns: (changes to GOOD, columns the message must name)
ROW_RULES = [
    ({"tilt_min_deg": "40", "tilt_max_deg": "-40"}, ("tilt_min_deg", "tilt_max_deg")),
    ({"tilt_min_deg": "30", "tilt_max_deg": "30"}, ("tilt_min_deg", "tilt_max_deg")),
    ({"methods": "wbp,isonet,wbp"}, ("methods",)),
    ({"corruption": ""}, ("corruption",)),
    ({"source": "hollow_spere"}, ("source",)),
    ({"voxel_size_angstrom": ""}, ("voxel_size",)),
    ({"tilt_step_deg": ""}, ("tilt_step_deg",)),
    ({"corruption": "fourier"}, ("wbp", "corruption")),
    ({"kind": "tomogram", "source": "t.mrc", "shape_px": "", "methods": "cryogen"}, ("corruption",)),
    ({"kind": "tomogram", "source": "t.mrc", "corruption": "", "methods": "cryogen"}, ("shape_px",)),
    ({"kind": "tomogram", "source": "t.mrc", "corruption": "", "shape_px": "", "methods": "wbp"}, ("wbp",)),
    ({"kind": "tiltseries", "source": "ts.mrc", "corruption": "", "shape_px": ""}, ("angles",)),
    ({"voltage_kv": ""}, ("voltage_kv",)),
    ({"cs_mm": ""}, ("cs_mm",)),
]


def _check_value_message(message: str, label: str, column: str, cell: str, expect: str) -> None:
    assert message.startswith(f"{label}: {column}"), f"the line, dataset or column is not named: {message}"
    node, _ = _value_schema(column)
    if expect == "required":
        assert "Field required" in message and "; allowed: " in message, message
    elif expect == "choices":
        choices = node.get("enum") or node["items"]["enum"]
        assert all(repr(c) in message for c in choices), f"not every choice is named: {message}"
    elif expect == "pattern":
        assert f"String should match pattern '{node['pattern']}'" in message, message
    elif expect == "shape":
        assert "must give 3 sizes between 8 and 4096" in message or "one integer or three" in message, message
    elif expect.startswith("bound"):
        keywords = [expect.split(":")[1]] if ":" in expect else [k for k in _BOUND_WORDS if k in node]
        named = [float(m.group(2)) for m in re.finditer(r"(greater|less) than (?:or equal to )?(-?[0-9.e+]+)", message)]
        assert any(node[k] in named for k in keywords), f"the bound is not named: {message}"
    else:
        assert "; allowed: " in message, f"what is allowed is not said: {message}"


def _sheet_error(path: Path) -> str:
    with pytest.raises(ValueError) as err:
        read_dataset_sheet(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


# ------------------------------------------------------------------ bad values, cell by cell


def test_every_invalid_cell_is_refused_by_line_dataset_and_column(tmp_path, request):
    counts: Counter = Counter()
    for column in COLUMNS:
        for cell, expect in invalid_cells(column):
            bad = {**GOOD, "dataset": "bad_row", column: cell}
            sheet = _write(tmp_path / f"{column}.tsv", GOOD, bad)
            message = _sheet_error(sheet)
            name = bad["dataset"] if bad["dataset"] else "?"
            _check_value_message(message, f"{sheet} line 5 ({name})", column, cell, expect)
            assert "line 4" not in message  # the good row is not blamed
            counts[column] += 1
    request.node.user_properties.append(("sheet_value_cases", sum(counts.values())))
    print(f"fuzz sheet values: {sum(counts.values())} invalid cells over {len(counts)} columns: {dict(counts)}")
    assert sum(counts.values()) >= 80 and len(counts) >= 15


@pytest.mark.parametrize(("changes", "named"), ROW_RULES, ids=lambda v: ",".join(v) if isinstance(v, tuple) else None)
def test_rules_across_columns_name_the_columns(tmp_path, changes, named):
    sheet = _write(tmp_path / "rules.tsv", GOOD, {**GOOD, "dataset": "bad_row", **changes})
    message = _sheet_error(sheet)
    assert message.startswith(f"{sheet} line 5 (bad_row): "), message
    assert all(word in message for word in named), f"{named} not all named: {message}"


def test_every_column_is_a_row_field_and_every_field_a_column():
    assert set(COLUMNS) == set(DatasetRow.model_fields)


# ------------------------------------------------------------------ layout


def _layouts(folder: Path) -> dict[str, tuple[str | bytes, str]]:
    header = "\t".join(COLUMNS)
    good = _row_text(GOOD)
    return {
        "empty file": ("", "the sheet is empty"),
        "comments only": ("# nothing\n\n# here\n", "the sheet is empty"),
        "header only": (header + "\n", "the sheet has no datasets"),
        "comma-separated": (header.replace("\t", ",") + "\n" + good.replace("\t", ",") + "\n", "tab-separated"),
        "semicolon-separated": (header.replace("\t", ";") + "\n" + good.replace("\t", ";") + "\n", "tab-separated"),
        "unknown column": (header + "\tpixel_size\n" + good + "\t4\n", "unknown column(s) pixel_size; allowed: "),
        "repeated column": (header + "\tseed\n" + good + "\t2\n", "line 1: column(s) seed appear more than once"),
        "empty header cell": (header.replace("\tkind\t", "\t\tkind\t") + "\n" + good + "\n", "header cell 2 is empty"),
        "extra cell": (header + "\n" + good + "\tsurprise\n", "line 2 (good): 19 tab-separated cells"),
        "duplicate names": (header + "\n" + good + "\n" + good + "\n", "dataset names repeat: good"),
        "latin-1 bytes": ((header + "\n" + good.replace("hollow_sphere", "sph\xe8re") + "\n").encode("latin-1"),
                          "not a UTF-8 text file"),
        **{f"missing column {c}": ("\t".join(x for x in COLUMNS if x != c) + "\n"
                                   + "\t".join(GOOD.get(x, "") for x in COLUMNS if x != c) + "\n",
                                   f"missing column(s) {c}") for c in REQUIRED_COLUMNS},
    }


def test_bad_layouts_are_named(tmp_path, request):
    n_cases = 0
    for what, (content, fragment) in _layouts(tmp_path).items():
        path = tmp_path / "layout" / f"{what.replace(' ', '_')}.tsv"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        if what == "extra cell":
            fragment = fragment.replace("19", str(len(COLUMNS) + 1))
        message = _sheet_error(path)
        assert message.startswith(f"{path}"), message
        assert fragment in message, f"{what}: {message}"
        n_cases += 1
    request.node.user_properties.append(("sheet_layout_cases", n_cases))
    print(f"fuzz sheet layouts: {n_cases} bad layouts, all named")


def test_a_folder_or_a_missing_sheet(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_dataset_sheet(tmp_path / "absent.tsv")
    with pytest.raises(ValueError, match="is not a file"):
        read_dataset_sheet(tmp_path)


def test_valid_oddities_read_correctly(tmp_path):
    """BOM, CRLF, quoted cells, trailing tabs, short lines, comments between rows, odd paths."""
    header = "\t".join(COLUMNS)
    tomo = {"dataset": "tomo_10.00Apx", "kind": "tomogram", "source": "my data/tomo #1 (bin 4).10.00Apx.rec",
            "voxel_size_angstrom": "10", "tilt_min_deg": "-60", "tilt_max_deg": "60", "methods": "cryogen",
            "mask": "masks/my mask.mrc"}
    series = {"dataset": "ts", "kind": "tiltseries", "source": '"quoted path.st"', "tilt_min_deg": " -45 ",
              "tilt_max_deg": "60", "methods": " wbp , isonet ", "angles": "ts.10.00Apx.rawtlt"}
    short = "\t".join(GOOD[c] for c in COLUMNS[:10])  # stops after methods: the rest is empty
    text = ("\ufeff# made on Windows\r\n" + header + "\t\t\r\n" + _row_text(tomo) + "\t\t\r\n# between rows\r\n"
            + _row_text(series) + "\r\n" + short.replace("good", "short") + "\r\n")
    sheet = tmp_path / "sheet folder" / "datasets.tsv"
    sheet.parent.mkdir()
    sheet.write_bytes(text.encode())
    rows = {r.dataset: r for r in read_dataset_sheet(sheet)}
    folder = sheet.parent.resolve()
    assert list(rows) == ["tomo_10.00Apx", "ts", "short"]
    assert rows["tomo_10.00Apx"].source == str(folder / "my data" / "tomo #1 (bin 4).10.00Apx.rec")
    assert rows["tomo_10.00Apx"].mask == str(folder / "masks" / "my mask.mrc")
    assert rows["ts"].source == str(folder / "quoted path.st") and rows["ts"].tilt_min_deg == -45.0
    assert rows["ts"].methods == ("wbp", "isonet") and rows["ts"].angles == str(folder / "ts.10.00Apx.rawtlt")
    assert rows["short"].snr == 5.0 and rows["short"].seed == 0 and rows["short"].shape_px is None
    assert rows["short"].voltage_kv is None and rows["short"].phase_flipped is False


# ------------------------------------------------------------------ random cells


def _cell_value(cell: str) -> str:
    """What the sheet reader makes of a cell: stripped, one pair of surrounding double quotes removed."""
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1].replace('""', '"').strip()
    return cell


CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=15)


def test_random_cells_read_or_are_refused_by_line(tmp_path, request):
    """Any text in any cell: the row validates, or the message names its line, dataset and column/rule."""
    counts: Counter = Counter()
    cases = [0]

    @given(column=st.sampled_from(COLUMNS), cell=st.one_of(CELL, st.sampled_from(["-1", "0", "1e9", "nan", "-0"])))
    def run(column, cell):
        cases[0] += 1
        bad = {**GOOD, "dataset": "bad_row", column: cell}
        sheet = _write(tmp_path / "random.tsv", GOOD, bad)
        if column == "dataset" and cell.lstrip().startswith("#"):  # the line is a comment: only GOOD is left
            assert [r.dataset for r in read_dataset_sheet(sheet)] == ["good"]
            counts["comment line"] += 1
            return
        try:
            rows = read_dataset_sheet(sheet)
        except ValueError as err:
            message = str(err)
            assert "\n" not in message and str(sheet) in message, message
            stripped = _cell_value(cell)
            name = "good" if stripped == "good" else (stripped if column == "dataset" and stripped else "bad_row")
            if "dataset names repeat" in message:
                assert message == f"{sheet}: dataset names repeat: good"
            elif column == "dataset" and not stripped:
                assert message.startswith(f"{sheet} line 5 (?): dataset: Field required"), message
            else:
                assert message.startswith(f"{sheet} line 5 ({name}): "), message
                assert column in message or f"dataset {name}:" in message, message
            counts["refused"] += 1
            return
        assert len(rows) == 2
        counts["read"] += 1

    settings(max_examples=300, **FUZZ)(run)()
    request.node.user_properties.extend(counts.items())
    print(f"fuzz sheet random cells: {cases[0]} cases; {dict(counts)}")
    assert cases[0] >= 300 and counts["read"] > 10 and counts["refused"] > 100


# ------------------------------------------------------------------ the command line


@pytest.mark.usefixtures("restore_logging")
def test_validate_config_exits_2_with_one_line(tmp_path, capsys):
    for what, (content, fragment) in list(_layouts(tmp_path).items())[:6]:
        sheet = tmp_path / "cli" / f"{what.replace(' ', '_')}.tsv"
        sheet.parent.mkdir(exist_ok=True)
        sheet.write_bytes(content if isinstance(content, bytes) else content.encode())
        config = sheet.with_suffix(".yaml")
        config.write_text(f"run: fuzz\ndatasets: {sheet}\n")
        assert main(["validate-config", "--config", str(config)]) == 2, what
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err
