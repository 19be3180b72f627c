"""Command line: ``python -m bench <name> [--quick] [--shape ZxYxX] [--out DIR]``, ``all``, ``list``."""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from bench.harness import BENCHMARKS, load_benchmarks, write_result

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run cryo_pipeline benchmarks and write <name>.json / <name>.md.",
    )
    parser.add_argument("name", help="a benchmark name, 'all' to run every one, or 'list' to list them")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test that runs in seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--shape", type=_shape, default=None,
                        help="volume shape ZxYxX for benchmarks that take one (e.g. stitch_scale)")
    return parser


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--shape must be three positive ints ZxYxX, e.g. 512x2048x2048, got {text!r}")
    return shape  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    load_benchmarks()
    known = sorted(BENCHMARKS)
    if args.name == "list":
        for name in known:
            doc = (BENCHMARKS[name].__doc__ or "").strip().splitlines()
            print(f"{name}\t{doc[0] if doc else ''}")
        return 0
    if args.name == "all":
        names = known
    elif args.name in BENCHMARKS:
        names = [args.name]
    else:
        parser.error(
            f"unknown benchmark {args.name!r}; known benchmarks: {', '.join(known) or '(none)'} "
            "(or 'all', 'list')"
        )
    if args.shape is not None:
        takes = [n for n in names if "shape" in inspect.signature(BENCHMARKS[n]).parameters]
        if len(takes) != len(names):
            parser.error(f"--shape: {', '.join(sorted(set(names) - set(takes)))} take(s) no shape")
    for name in names:
        start = time.perf_counter()
        print(f"[bench] {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        extra = {} if args.shape is None else {"shape": args.shape}
        result = BENCHMARKS[name](quick=args.quick, **extra)
        json_path, md_path = write_result(result, args.out)
        print(
            f"[bench] {name} done in {time.perf_counter() - start:.1f} s -> {json_path}, {md_path}",
            file=sys.stderr,
            flush=True,
        )
        print(md_path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
