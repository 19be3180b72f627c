"""Read and validate the dataset sheet (TSV)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from cryo_pipeline.config.dataset import PHANTOM_NAMES, DatasetRow, check_alternate_halves
from cryo_pipeline.config.halves import split_half_name
from cryo_pipeline.io.angles import read_tilt_angles
from cryo_pipeline.config.pipeline import format_validation_error

REQUIRED_COLUMNS = (
    "dataset",
    "kind",
    "source",
    "voxel_size_angstrom",
    "tilt_min_deg",
    "tilt_max_deg",
    "tilt_step_deg",
    "corruption",
    "snr",
    "methods",
)
CTF_COLUMNS = ("voltage_kv", "cs_mm", "defocus_angstrom", "amplitude_contrast", "phase_shift_deg", "phase_flipped")
FETCH_COLUMNS = ("data_kind", "sha256")  # kind empiar
ALIGNMENT_COLUMNS = ("tilt_axis_deg", "alignment")  # raw tilt series
VALIDATION_COLUMNS = ("reference_tilt_min_deg", "reference_tilt_max_deg", "halves", "source_even", "source_odd")
OPTIONAL_COLUMNS = ("angles", "seed", "shape_px", "mask", *CTF_COLUMNS, *FETCH_COLUMNS, *ALIGNMENT_COLUMNS,
                    *VALIDATION_COLUMNS)
_PATH_COLUMNS = ("source", "angles", "mask", "alignment", "source_even", "source_odd")


def _resolve(value: str, base: Path) -> str:
    if "://" in value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def _unquote(cell: str) -> str:
    """A cell's value: stripped, and a spreadsheet's surrounding double quotes removed."""
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1].replace('""', '"').strip()
    return cell


def _read_table(path: Path) -> tuple[int, list[str], list[tuple[int, list[str]]]]:
    """The header (line number, column names) and ``(line number, cells)`` per dataset line.

    Lines that are blank or start with ``#`` are skipped; a ``#`` inside a cell is data
    (a path may hold one). Line numbers are the file's, comment lines included.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {err.start}); save the sheet as UTF-8 TSV") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the dataset sheet ({err.strerror or err})") from None
    all_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [(n, line) for n, line in enumerate(all_lines, start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path}: the sheet is empty; it needs a header line of tab-separated column names "
                         f"({', '.join(REQUIRED_COLUMNS)}) and one line per dataset")
    header_line, header_text = lines[0]
    header = [_unquote(c) for c in header_text.split("\t")]
    while header and not header[-1]:  # trailing tabs
        header.pop()
    return header_line, header, [(n, [_unquote(c) for c in line.split("\t")]) for n, line in lines[1:]]


def _check_halves_of_angles_file(row: DatasetRow, label: str) -> None:
    """halves 'alternate' on a tilt series: each half of the working tilts needs >= 4 (read from its angles file).

    An ``empiar`` row's angles arrive with the fetch; ``split_halves`` checks those.
    """
    if row.halves != "alternate" or row.kind != "tiltseries" or not row.angles or not Path(row.angles).is_file():
        return
    check_alternate_halves(read_tilt_angles(Path(row.angles)), row, where=label)


def read_dataset_sheet(path: Path) -> list[DatasetRow]:
    """Read ``datasets.tsv`` into validated rows.

    Tab-separated, UTF-8 (a byte-order mark is fine), one header line; lines starting
    with ``#`` and blank lines are skipped. Empty cells mean "not given"; a line may stop
    early (its last cells are then empty) but may not have more cells than the header.
    Relative paths in ``source``, ``angles``, ``mask`` and ``alignment`` resolve against the sheet's
    folder (phantom names and URLs are left alone).

    Raises
    ------
    FileNotFoundError
        The sheet does not exist.
    ValueError
        One message naming the sheet, the line, the row's dataset and the column for
        every problem: unknown, missing, empty or repeated columns, extra cells, bad
        values, duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"dataset sheet {path} is not a file (config key 'datasets')")
        raise FileNotFoundError(f"dataset sheet {path} does not exist (config key 'datasets')")
    header_line, columns, lines = _read_table(path)
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    if len(columns) == 1 and any(sep in columns[0] for sep in ",;"):
        raise ValueError(f"{path}: line {header_line}: the header has no tab; the dataset sheet must be "
                         f"tab-separated (TSV), not comma- or semicolon-separated")
    if "" in columns:
        raise ValueError(f"{path}: line {header_line}: header cell {columns.index('') + 1} is empty")
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"{path}: line {header_line}: column(s) {', '.join(repeated)} appear more than once")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if not lines:
        raise ValueError(f"{path}: the sheet has no datasets")
    rows, problems = [], []
    for index, cells in lines:
        values = {k: v for k, v in zip(columns, cells, strict=False) if v != ""}  # a short line: rest empty
        label = f"{path} line {index} ({values.get('dataset', '?')})"
        if len(cells) > len(columns) and any(cells[len(columns):]):
            problems.append(f"{label}: {len(cells)} tab-separated cells but the header (line {header_line}) has "
                            f"{len(columns)} columns; extra: {', '.join(repr(c) for c in cells[len(columns):] if c)}")
            continue
        bad_paths = [c for c in _PATH_COLUMNS if "\x00" in values.get(c, "")]
        if bad_paths:
            problems.append(f"{label}: column {bad_paths[0]}: a path cannot hold a NUL byte "
                            f"(got {values[bad_paths[0]]!r}); fix the cell")
            continue
        for column in _PATH_COLUMNS:
            if column in values and not (column == "source" and (values[column] in PHANTOM_NAMES
                                                                 or values.get("kind") == "portal")):
                values[column] = _resolve(values[column], path.parent)
        try:
            row = DatasetRow.model_validate(values)
            _check_halves_of_angles_file(row, label)
            rows.append(row)
        except ValidationError as error:
            problems.append(format_validation_error(error, source=label))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("; ".join(problems))
    derived = [r.dataset for r in rows if split_half_name(r.dataset)]
    if derived:
        raise ValueError(f"{path}: dataset name(s) {', '.join(derived)} end in __even/__odd, which names the "
                         "halves of a 'halves' row; rename them")
    names = [r.dataset for r in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: dataset names repeat: {', '.join(duplicates)}")
    return rows
