"""Download one file (http, https, ``file://`` or a local path): resumable, retried, checked.

The bytes go to ``<dest>.part`` beside the final name. Only a complete file whose size
and sha256 match what was expected is renamed onto ``dest`` (``os.replace``), so a
killed or failed download never leaves a partial file under the final name. Running
again resumes from the ``.part`` with an HTTP ``Range`` request (a server that ignores
the range sends the whole file and the download starts over).

Nothing the user already had under ``dest`` is removed or replaced: a present file that
matches the expected sha256/size is kept and nothing is downloaded; a present file
without anything to check it against is kept too (and logged); a present file that
does *not* match is an error naming both sums. A download whose bytes do not match
removes only its own ``.part``.

Retries (with exponential back-off) cover dropped connections, time-outs and HTTP
408/425/429/5xx; any other HTTP error (404 above all) fails at once, naming the URL.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

from cryo_pipeline import __version__

logger = logging.getLogger(__name__)

__all__ = ["ChecksumMismatchError", "FetchError", "FetchResult", "fetch_url", "part_path", "sha256_file"]

CHUNK_BYTES = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)$")


class FetchError(ValueError):
    """A download failed for a reason the message names (URL, HTTP status, sizes or sums).

    A ``ValueError`` so that the ``cryo-pipeline`` command reports it in one line (exit 2).
    """


class ChecksumMismatchError(FetchError):
    """The bytes (downloaded, or already present under the final name) do not match the expected sha256 or size."""


class _IncompleteTransfer(Exception):
    """The connection ended before the announced size arrived (retried)."""


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_url` did.

    Attributes
    ----------
    url : str
        The source.
    path : Path
        The final file.
    size_bytes : int
        Its size.
    sha256 : str
        Its sha256, computed from its bytes (hex, lower case).
    downloaded : bool
        False when a file already present under ``path`` was kept.
    resumed_from_bytes : int
        Bytes of an earlier partial download that the final transfer continued from (0: from the start).
    attempts : int
        Transfers started (0 when nothing was downloaded).
    """

    url: str
    path: Path
    size_bytes: int
    sha256: str
    downloaded: bool
    resumed_from_bytes: int
    attempts: int


def part_path(dest: str | os.PathLike[str]) -> Path:
    """Where the bytes of ``dest`` collect until they are complete: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """sha256 of a file's bytes (hex, lower case), read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    _hash_file_into(digest, Path(path), chunk_bytes=chunk_bytes)
    return digest.hexdigest()


def _hash_file_into(digest, path: Path, *, chunk_bytes: int) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def _local_path(url: str) -> Path | None:
    """The file behind a ``file://`` URL or a plain path; None for a network URL."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: a file:// URL must name a local file (file:///path), not host {parts.netloc!r}")
    return Path(unquote(parts.path))


@contextmanager
def _open_source(
    url: str, local: Path | None, offset: int, *, timeout_s: float
) -> Iterator[tuple[BinaryIO, int, int | None]]:
    """Yield ``(stream, start, total)``: ``stream`` gives the bytes from ``start`` to the end.

    ``start`` is ``offset`` when the source honoured the request to continue there, else 0
    (the whole file comes again); ``total`` is the full size when known.
    """
    if local is not None:
        total = local.stat().st_size
        with local.open("rb") as handle:
            start = offset if 0 < offset <= total else 0
            handle.seek(start)
            yield handle, start, total
        return
    headers = {"User-Agent": f"cryo_pipeline/{__version__} (python urllib)"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"), url=url)
            if start != offset:
                raise _IncompleteTransfer(f"the server sent bytes from {start} instead of {offset}")
        else:
            length = response.headers.get("Content-Length")
            start, total = 0, (int(length) if length and length.isdigit() else None)
        yield response, start, total


def _parse_content_range(header: str | None, *, url: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); ``bytes */1000`` → (None, 1000)."""
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        raise FetchError(f"{url}: the server answered a range request with an invalid Content-Range {header!r}")
    start, total = match.groups()
    return (int(start) if start is not None else None), (int(total) if total != "*" else None)


def _transfer(
    url: str,
    local: Path | None,
    part: Path,
    offset: int,
    *,
    size_bytes: int | None,
    timeout_s: float,
    chunk_bytes: int,
    progress: bool,
    log_every_s: float,
) -> tuple[str, int, int]:
    """One attempt: append (or rewrite) ``part`` from the source; return (sha256, size, start)."""
    with _open_source(url, local, offset, timeout_s=timeout_s) as (stream, start, total):
        if size_bytes is not None and total is not None and total != size_bytes:
            raise ChecksumMismatchError(
                f"size mismatch for {url}: expected {size_bytes} bytes, the source has {total}; "
                "nothing was downloaded"
            )
        digest = hashlib.sha256()
        if start > 0:
            logger.info("resuming %s at %s of %s", url, _mib(start), _mib(total) if total else "?")
            _hash_file_into(digest, part, chunk_bytes=chunk_bytes)
        elif offset > 0:
            logger.info("%s: the source ignored the request to resume at %d bytes; downloading from the start",
                        url, offset)
        done, last_log = start, time.monotonic()
        with part.open("ab" if start > 0 else "wb") as handle, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-len(".part")],
            file=sys.stderr, disable=None if progress else True, leave=False,
        ) as bar:
            while chunk := stream.read(chunk_bytes):
                handle.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                now = time.monotonic()
                if now - last_log >= log_every_s:
                    share = f" ({100.0 * done / total:.0f}%)" if total else ""
                    logger.info("%s: %s of %s%s", url, _mib(done), _mib(total) if total else "?", share)
                    last_log = now
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and done != total:
        raise _IncompleteTransfer(f"the connection ended after {done} of {total} bytes")
    return digest.hexdigest(), done, start


def _keep_existing(url: str, dest: Path, *, sha256: str | None, size_bytes: int | None) -> FetchResult:
    """``dest`` is already there: keep it if it matches (or there is nothing to check), else fail."""
    size = dest.stat().st_size
    if size_bytes is not None and size != size_bytes:
        raise ChecksumMismatchError(
            f"{dest} already exists with {size} bytes, but {url} should have {size_bytes}; it was left as it "
            "is: move it aside to download again"
        )
    digest = sha256_file(dest)
    if sha256 is not None and digest != sha256:
        raise ChecksumMismatchError(
            f"{dest} already exists but its sha256 is {digest}, not the expected {sha256} of {url}; it was left "
            "as it is: move it aside (or correct the sha256 in the sheet) to download again"
        )
    if sha256 is not None or size_bytes is not None:
        logger.info("%s is already present and matches; not downloading %s", dest, url)
    else:
        logger.info("%s is already present and there is no sha256 or size to check it against; it is kept "
                    "as it is and %s is not downloaded (sha256 %s)", dest, url, digest)
    return FetchResult(url=url, path=dest, size_bytes=size, sha256=digest, downloaded=False,
                       resumed_from_bytes=0, attempts=0)


def fetch_url(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    progress: bool = True,
    log_every_s: float = 30.0,
    chunk_bytes: int = CHUNK_BYTES,
) -> FetchResult:
    """Download ``url`` to ``dest``, resuming an earlier partial download, and check it.

    Parameters
    ----------
    url : str
        ``http://``, ``https://`` or ``file://`` URL, or a local path (copied).
    dest : path-like
        Final file name; its folder is created. The bytes collect in ``<dest>.part``.
    sha256 : str, optional
        Expected sha256 (hex). Checked on the complete bytes before the rename.
    size_bytes : int, optional
        Expected size in bytes, checked against the announced size and the result.
    retries : int
        Further attempts after a failed one (dropped connection, time-out, HTTP 408/425/429/5xx);
        each continues where the ``.part`` ends. 0 = one attempt.
    backoff_s : float
        Wait before the first retry; doubled for each further one.
    timeout_s : float
        Socket time-out of each network operation (seconds).
    progress : bool
        Show a tqdm bar on stderr (only where stderr is a terminal).
    log_every_s : float
        Log a progress line (for a rule's log file) at most this often.
    chunk_bytes : int
        Read size.

    Returns
    -------
    FetchResult
        The final path, its size and sha256 as computed from its bytes, and what was done.

    Raises
    ------
    FetchError
        An HTTP error other than the retried ones (the message names the URL and the status,
        e.g. 404), or still failing after ``retries`` retries (the ``.part`` is kept for a resume).
    ChecksumMismatchError
        The downloaded bytes do not have ``sha256``/``size_bytes`` (the message names the URL
        and both values; the ``.part`` is removed), or a file already under ``dest`` does not
        match (it is left untouched).
    FileNotFoundError
        A local source that does not exist.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        return _keep_existing(url, dest, sha256=expected, size_bytes=size_bytes)
    local = _local_path(url)
    if local is not None and not local.is_file():
        raise FileNotFoundError(f"{local} does not exist (the source {url} to fetch into {dest})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    attempts = 0
    while True:
        attempts += 1
        offset = part.stat().st_size if part.exists() else 0
        try:
            digest, size, start = _transfer(url, local, part, offset, size_bytes=size_bytes, timeout_s=timeout_s,
                                            chunk_bytes=chunk_bytes, progress=progress, log_every_s=log_every_s)
            break
        except urllib.error.HTTPError as error:
            with error:
                if error.code == 416 and offset > 0:
                    _, total = _parse_content_range(error.headers.get("Content-Range"), url=url)
                    if total == offset:  # the .part already holds the whole file
                        digest, size, start = sha256_file(part), offset, offset
                        break
                    logger.warning("%s: the partial download %s (%d bytes) does not fit the source (%s bytes); "
                                   "starting again", url, part, offset, total)
                    part.unlink()
                    continue
                if error.code not in RETRY_STATUSES:
                    raise FetchError(f"download of {url} failed: HTTP {error.code} {error.reason}; "
                                     "check the URL in the dataset sheet") from None
                failure = f"HTTP {error.code} {error.reason}"
        except (_IncompleteTransfer, urllib.error.URLError, http.client.HTTPException, OSError) as error:
            failure = str(getattr(error, "reason", None) or error) or type(error).__name__
        if attempts > retries:
            kept = part.stat().st_size if part.exists() else 0
            raise FetchError(
                f"download of {url} failed after {attempts} attempt(s): {failure}; {kept} bytes are kept in "
                f"{part}: run again to resume"
            )
        wait = backoff_s * 2 ** (attempts - 1)
        logger.warning("%s: %s; retry %d of %d in %.1f s", url, failure, attempts, retries, wait)
        time.sleep(wait)

    if size_bytes is not None and size != size_bytes:
        part.unlink()
        raise ChecksumMismatchError(f"size mismatch for {url}: expected {size_bytes} bytes, got {size}; "
                                    f"the download {part} was removed and {dest} not created")
    if expected is not None and digest != expected:
        part.unlink()
        raise ChecksumMismatchError(f"sha256 mismatch for {url}: expected {expected}, got {digest}; the download "
                                    f"{part} was removed and {dest} not created (check the sha256 in the sheet)")
    os.replace(part, dest)
    logger.info("fetched %s → %s (%s, sha256 %s%s)", url, dest, _mib(size), digest,
                f", resumed at {start} bytes" if start else "")
    return FetchResult(url=url, path=dest, size_bytes=size, sha256=digest, downloaded=True,
                       resumed_from_bytes=start, attempts=attempts)
