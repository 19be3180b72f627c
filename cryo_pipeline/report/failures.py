"""Which (dataset, method) results are missing after a run, and the logs that say why.

The workflow expects one ``results/<run>/<dataset>/<method>/metrics.tsv`` per pair.
After ``snakemake --keep-going`` some may be missing: their jobs (or an upstream job)
failed. Each job logs to ``logs/<run>/<rule>/<dataset>[.<method>[.<part>]].log``; a
failed ``cryo-pipeline`` command leaves ``error: ...`` (a user error) or a traceback
there. The newest such log of the pair is the one the report points to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryo_pipeline.report.html import Column, LogBlock, Section, TableBlock
from cryo_pipeline.report.methods import METHOD_ORDER
from cryo_pipeline.report.runtimes import job_method, split_stem

ERROR_LINE = re.compile(r"^(error:|Traceback \(most recent call last\)|\S*(Error|Exception)\b)", re.M)
TAIL_LINES = 15
TAIL_CHARS = 3000


@dataclass(frozen=True)
class Failure:
    """A (dataset, method) pair without a metrics table.

    Attributes
    ----------
    status : str
        ``"failed"`` (a log holds an error), ``"no result"`` (logs exist but none
        holds an error: the job was killed or interrupted) or ``"not run"``.
    log_path : str
        The newest log with an error ('' when none).
    logs : tuple of str
        Every log of the dataset (dataset-level jobs) and of this method, newest first.
    log_tail : str
        The last lines of ``log_path`` (or of the newest log).
    """

    dataset: str
    method: str
    status: str
    log_path: str
    logs: tuple[str, ...]
    log_tail: str


def pair_of_table(path: Path) -> tuple[str, str]:
    """``results/<run>/<dataset>/<method>/metrics.tsv`` → ``(dataset, method)``."""
    path = Path(path)
    return path.parent.parent.name, path.parent.name


def _logs_by_dataset(logs_dir: Path | None, datasets: Iterable[str]) -> dict[str, list[tuple[str, Path]]]:
    """dataset → [(method or '', log path)] for every ``<rule>/<stem>.log`` under ``logs_dir``."""
    found: dict[str, list[tuple[str, Path]]] = {}
    if logs_dir is None or not Path(logs_dir).is_dir():
        return found
    names = list(datasets)
    for path in sorted(Path(logs_dir).glob("*/*.log")):
        split = split_stem(path.stem, names)
        if split is not None:
            dataset, rest = split
            method = job_method(path.parent.name, rest, METHOD_ORDER)
            if method is not None:
                found.setdefault(dataset, []).append((method, path))
    return found


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        return f"(cannot read {path}: {error})"
    return "\n".join(lines[-TAIL_LINES:])[-TAIL_CHARS:]


def _has_error(path: Path) -> bool:
    try:
        return ERROR_LINE.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def find_failures(expected_tables: Sequence[Path], *, logs_dir: Path | None,
                  datasets: Iterable[str] = ()) -> list[Failure]:
    """One :class:`Failure` per expected metrics table that does not exist.

    Parameters
    ----------
    expected_tables : sequence of Path
        Every ``<dataset>/<method>/metrics.tsv`` the sheet asks for.
    logs_dir : Path or None
        ``logs/<run>``; ``None`` or absent: no log paths.
    datasets : iterable of str
        Every dataset name of the sheet (to attribute log files with dotted names);
        those of ``expected_tables`` are added.
    """
    missing = [pair_of_table(p) for p in expected_tables if not Path(p).is_file()]
    if not missing:
        return []
    names = set(datasets) | {pair_of_table(p)[0] for p in expected_tables}
    logs = _logs_by_dataset(logs_dir, names)
    failures = []
    for dataset, method in missing:
        own = [p for m, p in logs.get(dataset, []) if m in ("", method)]
        own.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        errors = [p for p in own if _has_error(p)]
        if errors:
            status, shown = "failed", errors[0]
        elif own:
            status, shown = "no result", own[0]
        else:
            status, shown = "not run", None
        failures.append(Failure(
            dataset=dataset, method=method, status=status,
            log_path=str(errors[0]) if errors else "",
            logs=tuple(str(p) for p in own),
            log_tail=_tail(shown) if shown is not None else "",
        ))
    return failures


def failures_section(failures: Sequence[Failure]) -> Section:
    """A table of the missing (dataset, method) results with their logs, and the log tails."""
    columns = [Column("dataset", "dataset"), Column("method", "method"), Column("status", "status"),
               Column("log", "log", "", "the newest log of the pair that holds an error")]
    rows = [[f.dataset, f.method, f.status, f.log_path or (f.logs[0] if f.logs else "no log: the job never started")]
            for f in failures]
    caption = ("A missing result's own jobs, or a job it depends on, failed (status failed: its log holds the "
               "error), ended without a result (no result), or never started because an upstream job failed "
               "(not run). Fix the cause and run Snakemake again: it redoes only what is missing.")
    logs = []
    for failure in failures:
        path = failure.log_path or (failure.logs[0] if failure.logs else "")
        if path:
            label = f"{failure.dataset} / {failure.method}: last lines of the log"
            logs.append(LogBlock(label, path, failure.log_tail))
    datasets = sorted({f.dataset for f in failures})
    warning = (f"{len(failures)} result(s) of {len(datasets)} dataset(s) are missing: {', '.join(datasets)}. "
               "The rest of the report covers what finished.")
    return Section(id="failures", title="Failed or missing results", warnings=[warning],
                   tables=[TableBlock("", caption, columns, rows, css_class="failures")], logs=logs)
