"""Atomic writes: a file or folder appears under its final name complete, or not at all.

Every writer in :mod:`cryo_pipeline.io` writes into a temporary path in the same
folder as the target and renames it onto the final name only after the write
succeeded. A crashed or killed job therefore never leaves a half-written output
that Snakemake (or a user) would mistake for a finished one. The temporary name
starts with a dot and holds the process id and a random token, so parallel jobs
never collide and no shared temp folder is needed.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["atomic_write_bytes", "atomic_write_path", "atomic_write_text"]


def _sibling(final: Path, tag: str) -> Path:
    """A hidden, unique path beside ``final``: ``.{name}.{tag}-{pid}-{random}``."""
    return final.parent / f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _remove(path: Path) -> None:
    """Remove a file, link or folder tree if it exists; never raise."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as err:  # pragma: no cover - best effort clean-up
        logger.warning("could not remove temporary path %s: %s", path, err)


def _commit(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` onto ``final``.

    A file (or a folder onto a missing target) is one ``os.replace``. A folder onto
    an existing target moves the old target aside first, renames the new one in,
    and only then deletes the old one; if the rename fails the old one is put back.
    """
    if not tmp.exists() and not tmp.is_symlink():
        raise FileNotFoundError(f"nothing was written to the temporary path {tmp} for {final}")
    target_exists = final.exists() or final.is_symlink()
    if tmp.is_dir() and target_exists:
        old = _sibling(final, "old")
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old, final)
            raise
        _remove(old)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_write_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    The caller creates the temporary file *or folder* (e.g. a Zarr store) at the
    yielded path; nothing exists there yet. Parent folders of ``final`` are created.

    Parameters
    ----------
    final : path-like
        The name the output should have once it is complete.

    Yields
    ------
    Path
        ``final.parent / ".{final.name}.tmp-{pid}-{random}"``.

    Raises
    ------
    FileNotFoundError
        If the body finished without creating anything at the temporary path.

    Notes
    -----
    If the body raises, the temporary path is removed, ``final`` is left as it
    was and the exception propagates. Replacing an existing *folder* is not a single
    atomic step (POSIX cannot rename over a non-empty folder): the old folder is
    renamed aside, the new one renamed in, and the old one deleted, so at every
    moment ``final`` is either the complete old or the complete new output, apart
    from the instant between the two renames.

    Examples
    --------
    >>> with atomic_write_path(out) as tmp:          # doctest: +SKIP
    ...     np.save(tmp, array)                      # written as tmp, renamed to out
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, "tmp")
    try:
        yield tmp
        _commit(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    logger.debug("wrote %s", final)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename).

    Parameters
    ----------
    path : path-like
        Output file; parent folders are created.
    data : bytes
        The complete file content.
    """
    with atomic_write_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding`` (default UTF-8).

    Parameters
    ----------
    path : path-like
        Output file; parent folders are created.
    text : str
        The complete file content (newlines written as given).
    encoding : str
        Text encoding.
    """
    atomic_write_bytes(path, text.encode(encoding))
