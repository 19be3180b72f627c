"""A tiny benchmark harness: timing, peak memory, a result record, and a registry.

A benchmark is a function ``fn(*, quick: bool) -> BenchResult`` in a module of the
``bench`` package, registered with ``@register("name")``. ``python -m bench name``
finds it (every module of the package is imported by :func:`load_benchmarks`), runs
it, and writes ``<name>.json`` and ``<name>.md`` with :func:`write_result`.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import os
import pkgutil
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESERVED_NAMES = frozenset({"all", "list"})
_MIN_LOAD_SPAN_S = 0.5

BENCHMARKS: dict[str, Callable[..., BenchResult]] = {}


def register(name: str) -> Callable[[Callable[..., BenchResult]], Callable[..., BenchResult]]:
    """Register a benchmark function under ``name`` (decorator).

    The function is called as ``fn(quick=bool)`` and returns a :class:`BenchResult`.
    """
    if name in RESERVED_NAMES:
        raise ValueError(f"benchmark name {name!r} is reserved (reserved: {', '.join(sorted(RESERVED_NAMES))})")

    def decorator(fn: Callable[..., BenchResult]) -> Callable[..., BenchResult]:
        existing = BENCHMARKS.get(name)
        if existing is not None and _qualified(existing) != _qualified(fn):
            raise ValueError(f"benchmark {name!r} is already registered by {_qualified(existing)}")
        BENCHMARKS[name] = fn
        return fn

    return decorator


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def load_benchmarks() -> dict[str, Callable[..., BenchResult]]:
    """Import every module of the ``bench`` package so their ``@register`` calls run."""
    package = importlib.import_module("bench")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name == "harness":
            continue
        importlib.import_module(f"bench.{info.name}")
    return BENCHMARKS


# --------------------------------------------------------------------------- timing


def timeit(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 1) -> dict[str, Any]:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones.

    Returns
    -------
    dict
        ``min_s``, ``median_s`` (wall clock, seconds), ``runs`` (every timed wall time),
        ``cpu_median_s`` (median process CPU time per call, all threads),
        ``others_busy_cores`` (average number of CPU cores kept busy by *other*
        processes during the timed calls, from ``/proc/stat``: a sign of a shared, noisy
        machine; ``None`` where unreadable or the timed calls took under 0.5 s in all),
        and ``last`` (the value the last call returned, so a caller can check the output).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for _ in range(max(0, warmup)):
        fn()
    runs: list[float] = []
    cpu: list[float] = []
    last = None
    system_before = _system_busy_s()
    process_before = time.process_time()
    wall_before = time.perf_counter()
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        last = fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall_total = time.perf_counter() - wall_before
    process_total = time.process_time() - process_before
    system_after = _system_busy_s()
    others = None
    # /proc/stat counts in clock ticks (10 ms): too coarse for a shorter timed span
    if system_before is not None and system_after is not None and wall_total >= _MIN_LOAD_SPAN_S:
        others = max(0.0, (system_after - system_before) - process_total) / wall_total
    return {
        "min_s": min(runs),
        "median_s": statistics.median(runs),
        "runs": runs,
        "cpu_median_s": statistics.median(cpu),
        "others_busy_cores": others,
        "last": last,
    }


def _system_busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:9]]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    if len(values) < 5:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / ticks


# --------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``resource.getrusage``).

    Since the last :func:`reset_peak_rss` where that worked, else since start-up.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def vm_hwm_mib() -> float:
    """This process's own peak RSS in MiB (Linux ``VmHWM``; unlike ``ru_maxrss`` it does not carry
    the parent's peak over ``fork`` + ``exec``), else :func:`peak_rss_mb`."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def current_rss_mb() -> float | None:
    """Current resident set size in MiB (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        with open("/proc/self/statm") as fh:
            resident_pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)


def reset_peak_rss() -> bool:
    """Reset the peak-RSS high-water mark to the current RSS (Linux ≥ 4.0).

    Returns ``False`` where the kernel does not allow it; :func:`peak_rss_mb` then keeps
    reporting the peak since process start.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- results


@dataclass
class BenchResult:
    """What one benchmark run produced.

    Attributes
    ----------
    name : str
        Benchmark name; the output files are ``<name>.json`` and ``<name>.md``.
    params : dict
        Settings of the run (sizes, repeats, checks), JSON-serialisable.
    rows : list of dict
        One dict per measurement; the markdown table has one column per key.
    notes : list of str
        Free-text remarks, written under the table.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    """CPU count, platform, library versions and the UTC time of the run."""
    info: dict[str, Any] = {
        "utc_time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    for module_name in ("numpy", "scipy", "torch"):
        module = sys.modules.get(module_name)
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                info[f"{module_name}_version"] = None
                continue
        info[f"{module_name}_version"] = getattr(module, "__version__", None)
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_num_threads"] = torch.get_num_threads()
    return info


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to ``None``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy scalar / array
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _format_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: BenchResult, machine: dict[str, Any]) -> str:
    """Markdown report: header, machine line, params, table of rows, notes."""
    lines = [f"# Benchmark: {result.name}", ""]
    lines.append(
        f"Run {machine.get('utc_time')} on {machine.get('platform')}, {machine.get('cpu_count')} CPUs "
        f"(torch {machine.get('torch_version')}, {machine.get('torch_num_threads')} threads; "
        f"numpy {machine.get('numpy_version')}; scipy {machine.get('scipy_version')})."
    )
    lines.append("")
    scalar_params = {k: v for k, v in result.params.items() if not isinstance(v, dict | list)}
    if scalar_params:
        lines.append("Parameters: " + ", ".join(f"`{k}` = {_format_cell(v)}" for k, v in scalar_params.items()))
        lines.append("")
    if result.rows:
        columns: list[str] = []  # scalar columns only; lists/dicts stay in the JSON
        for row in result.rows:
            columns.extend(k for k, v in row.items() if k not in columns and not isinstance(v, list | tuple | dict))
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for row in result.rows:
            lines.append("| " + " | ".join(_format_cell(row.get(c)) for c in columns) + " |")
        lines.append("")
    if result.notes:
        lines.append("Notes:")
        lines.append("")
        lines.extend(f"- {note}" for note in result.notes)
        lines.append("")
    return "\n".join(lines)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def write_result(result: BenchResult, out_dir: Path = Path("bench/results")) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir``, each atomically.

    Each file is written under a temporary name in ``out_dir`` and moved into place with
    :func:`os.replace`, so a reader never sees a half-written file.

    Returns
    -------
    tuple of Path
        ``(json_path, md_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    payload = {
        "name": result.name,
        "machine": machine,
        "params": result.params,
        "rows": result.rows,
        "notes": result.notes,
    }
    json_path = out_dir / f"{result.name}.json"
    md_path = out_dir / f"{result.name}.md"
    _atomic_write_text(json_path, json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    _atomic_write_text(md_path, render_markdown(result, machine))
    return json_path, md_path
