"""Benchmark "fuzz_readers": fuzzing the MRC and tilt-angle readers with mutated bytes (issue 8).

Three targets, each a function of raw bytes that writes them to a file whose name holds a
space and dots (``fuzz case.10.00Apx.mrc``) and runs the readers on it:

* ``mrc``  — ``read_mrc_header``, ``read_mrc`` (voxel size 0 allowed) and ``read_mrc_memmap``;
* ``tlt``  — ``read_tilt_angles`` on a ``.tlt`` list;
* ``mdoc`` — ``read_tilt_angles`` on a SerialEM ``.mdoc``.

Each case must end in a read (angles within [-90, 90]) or a one-line ``ValueError`` naming
the file. Anything else is a **crash**: another exception type (``MemoryError`` from a giant
declared size included), a message without the path, or a case running past 10 s.

Engine: `atheris <https://github.com/google/atheris>`_ (coverage-guided libFuzzer) when it
is importable (``pip install atheris``; not a dependency of the package). Each target then
runs in a fresh subprocess with the instrumented ``cryo_pipeline.io`` modules, ``-seed=1``,
``-timeout=10`` and ``-malloc_limit_mb=1024``; inputs that crash are kept as ``crash-*``
files in the temporary folder (deleted afterwards, the first crash's message is reported).
Without atheris a seeded random mutator (byte flips, special int32 header words,
truncation, insertion, splicing, special tokens) runs the same targets in-process; the
notes say which engine ran. Seeds: small valid MRC files of every supported mode, a
``.tlt`` and an ``.mdoc``.

Rows: ``target, engine, runs, seconds, execs_per_s, reads, errors, crashes, coverage``
(libFuzzer's ``cov``, atheris only) and ``first_crash``. ``--quick``: a few hundred runs
per target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchResult, register

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("mrc", "tlt", "mdoc")
SUFFIX = {"mrc": ".mrc", "tlt": ".tlt", "mdoc": ".mdoc"}
FULL_RUNS = {"atheris": 50_000, "random": 10_000}
QUICK_RUNS = {"atheris": 2_000, "random": 300}
CASE_TIMEOUT_S = 10
MAX_LEN = 8192
SEED = 0

SPECIAL_INTS = (0, 1, -1, 2, 3, 4, 6, 12, 99, 101, 401, 1024, 2**24, 2**31 - 1, -(2**31))
HEADER_WORDS = (0, 4, 8, 12, 28, 32, 36, 40, 64, 68, 72, 88, 92, 220)  # nx ny nz mode mx my mz cella mapc..
TOKENS = (b"nan", b"inf", b"-91", b"90.0001", b"#", b"\r\n", b"\n", b"\xef\xbb\xbf", b"[ZValue = 1]\n",
          b"TiltAngle = ", b"[T = x]\n", b"\t", b"1e400", b"\x00", b"\xff")


class CaseTimeout(BaseException):
    """A case ran past ``CASE_TIMEOUT_S`` (a BaseException: no reader may swallow it)."""


class UnclearError(AssertionError):
    """A ValueError whose message is not one line naming the file."""


# ------------------------------------------------------------------ targets and seeds


def make_target(name: str, folder: Path) -> Callable[[bytes], str]:
    """The check for ``name``: ``fn(data) -> "read" | "error"``; anything else raises."""
    from cryo_pipeline.io.angles import read_tilt_angles
    from cryo_pipeline.io.mrc import read_mrc, read_mrc_header, read_mrc_memmap

    path = folder / f"fuzz case.10.00Apx{SUFFIX[name]}"

    def readers() -> Iterator[Callable[[], Any]]:
        if name == "mrc":
            yield lambda: read_mrc_header(path)
            yield lambda: read_mrc(path, allow_missing_voxel_size=True)
            yield lambda: read_mrc_memmap(path, voxel_size_angstrom=1.0)
        else:
            yield lambda: read_tilt_angles(path)

    def target(data: bytes) -> str:
        path.write_bytes(data)
        outcome = "read"
        for read in readers():
            try:
                value = read()
            except ValueError as err:
                message = str(err)
                if str(path) not in message or "\n" in message:
                    raise UnclearError(f"unclear error from {name}: {message!r}") from err
                outcome = "error"
                continue
            if name != "mrc" and not (value.size and np.all(np.abs(value) <= 90.0)):
                raise AssertionError(f"angles outside [-90, 90] read from {data[:60]!r}")
        return outcome

    return target


def seed_corpus(name: str, folder: Path) -> list[bytes]:
    """Small valid inputs for ``name``."""
    if name == "tlt":
        return ["".join(f"{a:.2f}\n" for a in np.arange(-60, 61, 3.0)).encode(), b"-60\n# comment\n\n0\n60\n"]
    if name == "mdoc":
        sections = "".join(f"[ZValue = {z}]\nTiltAngle = {a:.2f}\nExposureDose = 3\n\n"
                           for z, a in enumerate(np.arange(-30, 31, 10.0)))
        return [f"PixelSpacing = 5.4\nImageFile = TS_01.mrc\n\n{sections}".encode()]
    from cryo_pipeline.io.mrc import write_mrc

    rng = np.random.default_rng(SEED)
    seeds = []
    for dtype in (np.float32, np.int8, np.int16, np.uint16, np.float16):
        path = folder / f"seed_{np.dtype(dtype).name}.mrc"
        write_mrc(path, (rng.standard_normal((3, 4, 5)) * 20).astype(dtype), voxel_size_angstrom=2.5)
        seeds.append(path.read_bytes())
        path.unlink()
    return seeds


# ------------------------------------------------------------------ the fallback engine


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    """One to three random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        if op == 0 and out:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif op == 1 and len(out) >= 224:  # a header word
            struct.pack_into("<i", out, rng.choice(HEADER_WORDS), rng.choice(SPECIAL_INTS))
        elif op == 2:  # truncate
            del out[rng.randint(0, len(out)):]
        elif op == 3:  # insert random bytes
            at = rng.randint(0, len(out))
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4:  # insert a token
            at = rng.randint(0, len(out))
            out[at:at] = rng.choice(TOKENS)
        elif op == 5 and out:  # delete a chunk
            at = rng.randrange(len(out))
            del out[at:at + rng.randint(1, 64)]
        else:  # splice with another seed
            other = rng.choice(corpus)
            cut = rng.randint(0, min(len(out), len(other)))
            out = out[:cut] + bytearray(other[cut:])
    return bytes(out[:MAX_LEN])


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def _raise(signum, frame):
        raise CaseTimeout(f"a case ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_random(name: str, runs: int, folder: Path) -> dict[str, Any]:
    """The seeded in-process mutator: counts of reads, errors and crashes."""
    target = make_target(name, folder)
    corpus = seed_corpus(name, folder)
    rng = random.Random(f"{SEED}-{name}")
    counts = {"read": 0, "error": 0, "crash": 0}
    first_crash = None
    start = time.perf_counter()
    for i in range(runs):
        data = corpus[i % len(corpus)] if i < len(corpus) else mutate(rng.choice(corpus), corpus, rng)
        try:
            with _deadline(CASE_TIMEOUT_S):
                counts[target(data)] += 1
        except (Exception, CaseTimeout) as err:  # noqa: BLE001 - every other outcome is a finding
            counts["crash"] += 1
            first_crash = first_crash or f"{type(err).__name__}: {str(err)[:200]}"
    seconds = time.perf_counter() - start
    return {"runs": runs, "seconds": seconds, "reads": counts["read"], "errors": counts["error"],
            "crashes": counts["crash"], "coverage": None, "first_crash": first_crash}


# ------------------------------------------------------------------ the atheris engine


def load_atheris() -> tuple[Any, str | None]:
    """(module, None), or (None, why not)."""
    try:
        import atheris
    except ImportError as err:
        return None, f"{err} (pip install atheris)"
    return atheris, None


def _child(name: str, runs: int, folder: Path, counts_path: Path) -> None:
    """Subprocess body: instrument cryo_pipeline.io, then fuzz one target with atheris."""
    import atheris

    with atheris.instrument_imports(include=["cryo_pipeline"]):
        import cryo_pipeline.io.angles  # noqa: F401
        import cryo_pipeline.io.mrc  # noqa: F401
    corpus_dir = folder / "corpus"
    corpus_dir.mkdir()
    for i, data in enumerate(seed_corpus(name, folder)):
        (corpus_dir / f"seed{i}").write_bytes(data)
    target = make_target(name, folder)
    counts = {"read": 0, "error": 0}
    fd = os.open(counts_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def one_input(data: bytes) -> None:
        counts[target(data)] += 1
        text = json.dumps(counts).encode().ljust(64)
        os.pwrite(fd, text, 0)

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-seed=1", f"-timeout={CASE_TIMEOUT_S}", "-malloc_limit_mb=1024",
                   "-rss_limit_mb=4096", f"-max_len={MAX_LEN}", f"-artifact_prefix={folder}/", str(corpus_dir)],
                  one_input)
    atheris.Fuzz()


def run_atheris(name: str, runs: int, folder: Path) -> dict[str, Any]:
    """Fuzz ``name`` in a subprocess; parse libFuzzer's summary and the child's counts."""
    counts_path = folder / "counts.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    command = [sys.executable, "-m", "bench.fuzz_readers", "--child", name, "--runs", str(runs),
               "--folder", str(folder), "--counts", str(counts_path)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder,
                          timeout=1800)
    seconds = time.perf_counter() - start
    log = done.stdout + "\n" + done.stderr
    counts = json.loads(counts_path.read_text() or "{}") if counts_path.is_file() else {}
    finished = re.search(r"Done (\d+) runs in (\d+) second", log)
    coverage = re.findall(r"\bcov: (\d+)", log)
    first_crash = None
    if done.returncode != 0:
        lines = [line for line in log.splitlines() if line.strip()]
        reason = next((line for line in lines if "Uncaught Python exception" in line or "ERROR: libFuzzer" in line),
                      f"exit status {done.returncode}")
        detail = next((line for line in reversed(lines) if re.match(r"^\w+(Error|Exception|Timeout)\b", line)), "")
        first_crash = f"{reason.strip()} {detail.strip()}".strip()[:300]
    return {"runs": int(finished.group(1)) if finished else counts.get("read", 0) + counts.get("error", 0),
            "seconds": seconds, "reads": counts.get("read", 0), "errors": counts.get("error", 0),
            "crashes": int(done.returncode != 0), "coverage": int(coverage[-1]) if coverage else None,
            "first_crash": first_crash}


# ------------------------------------------------------------------ the benchmark


@register("fuzz_readers")
def fuzz_readers(*, quick: bool = False, engine: str | None = None) -> BenchResult:
    """Fuzz the MRC and tilt-angle readers (atheris if installed, else a seeded mutator)."""
    atheris, reason = load_atheris()
    engine = engine or ("atheris" if atheris is not None else "random")
    runs = (QUICK_RUNS if quick else FULL_RUNS)[engine]
    rows, notes = [], []
    if atheris is None:
        notes.append(f"atheris unavailable: {reason}; the seeded random mutator ran instead")
    for name in TARGETS:
        with tempfile.TemporaryDirectory(prefix=f"fuzz_{name}_") as tmp:
            result = (run_atheris if engine == "atheris" else run_random)(name, runs, Path(tmp))
        rows.append({"target": name, "engine": engine, **result,
                     "execs_per_s": result["runs"] / max(result["seconds"], 1e-9)})
    crashes = sum(r["crashes"] for r in rows)
    notes.append(f"{sum(r['runs'] for r in rows)} cases, {crashes} crash(es): "
                 + ("every case was a read or a one-line error naming the file" if not crashes else
                    "see first_crash"))
    return BenchResult(name="fuzz_readers", params={"engine": engine, "runs_per_target": runs, "seed": SEED,
                                                    "case_timeout_s": CASE_TIMEOUT_S, "max_len": MAX_LEN},
                       rows=rows, notes=notes)


def main(argv: list[str] | None = None) -> int:
    """The atheris child (``--child TARGET``); the benchmark itself runs via ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_readers")
    parser.add_argument("--child", choices=TARGETS, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--counts", type=Path, required=True)
    args = parser.parse_args(argv)
    _child(args.child, args.runs, args.folder, args.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
