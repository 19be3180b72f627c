"""Where a sheet row's files come from: URLs or paths that ``fetch_dataset`` downloads.

An ``empiar`` row's ``source`` and ``angles`` are http(s) or ``file://`` URLs, or local
paths (a local mirror). The downloaded copy keeps the last component of the URL as its
name, so that name must be a plain file name with the right suffix.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

FETCH_SCHEMES = ("http", "https", "file")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def is_url(location: str) -> bool:
    """True for ``scheme://...`` (any scheme), False for a plain path."""
    return "://" in location


def fetch_file_name(location: str) -> str:
    """The local file name of a URL or path: its last path component, %-decoded.

    ``https://ftp.ebi.ac.uk/empiar/world_availability/10045/data/x/IS002_291013_011.mrcs``
    → ``IS002_291013_011.mrcs``; ``/data/ts.rawtlt`` → ``ts.rawtlt``; ``https://host/data/`` → ``""``.
    """
    path = unquote(urlsplit(location).path) if is_url(location) else location
    return path.replace("\\", "/").rsplit("/", 1)[-1]  # "" for a folder (trailing slash)


def check_fetch_location(dataset: str, column: str, location: str, suffixes: tuple[str, ...]) -> str:
    """Check one location of dataset ``dataset`` and return the local file name it gets.

    Raises
    ------
    ValueError
        For a scheme other than http, https or file (naming the column and the URL), a
        location that does not end in a plain file name, or a file name without one of
        ``suffixes``.
    """
    scheme = urlsplit(location).scheme
    if is_url(location) and scheme not in FETCH_SCHEMES:
        raise ValueError(
            f"dataset {dataset}: {column} {location!r} uses scheme {scheme!r}; fetch_dataset reads "
            f"{', '.join(FETCH_SCHEMES)} URLs or local paths (EMPIAR: https://ftp.ebi.ac.uk/empiar/...)"
        )
    file_name = fetch_file_name(location)
    if not _FILE_NAME.match(file_name):
        raise ValueError(
            f"dataset {dataset}: {column} {location!r} does not end in a file name of letters, digits "
            "and '_ . + -'; point it at the file itself"
        )
    if not file_name.lower().endswith(suffixes):
        raise ValueError(f"dataset {dataset}: {column} file {file_name!r} must end in one of {', '.join(suffixes)}")
    return file_name
