"""The ``cryo-pipeline`` command: one subcommand per stage.

Each subcommand parses its flags, builds the stage config, and calls
``cryo_pipeline.stages.<name>.run``. Logs go to stderr (the rule redirects them to
its log file). A user error (bad value, missing file, bad format) prints one line
``error: ...`` and exits 2; nothing is left half-written because stages write to a
temporary name and rename.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from cryo_pipeline import __version__
from cryo_pipeline.cli.commands import COMMANDS
from cryo_pipeline.cli.validation_commands import VALIDATION_COMMANDS

log = logging.getLogger("cryo_pipeline")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="cryo-pipeline",
        description="Missing-wedge correction for cryo-ET: stages of the cryo_pipeline Snakemake workflow.",
    )
    parser.add_argument("--version", action="version", version=f"cryo_pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (a rule passes its allocation); 0 = default"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, handler) in {**COMMANDS, **VALIDATION_COMMANDS}.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 user error, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
            ValidationError, FloatingPointError) as error:
        if isinstance(error, OSError) and error.filename is not None and error.strerror:
            message = f"{error.filename}: {error.strerror}"
            if isinstance(error, (FileExistsError, NotADirectoryError)):
                message += " (a file is where a folder should be)"
        else:
            message = str(error).replace("\n", " ")
        log.debug("user error", exc_info=True)  # the traceback with -v; the message once, below
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
