"""Fixtures shared by the whole test suite.

Temp space: every test owns its temporary folder. The autouse fixtures below point
``$TMPDIR`` (and ``TEMP``/``TMP``), Python's ``tempfile.tempdir`` and Dask's
``temporary-directory`` at a fresh folder under pytest's base temp for the session (what
module- and session-scoped fixtures create) and at a fresh folder per test (``test_tmpdir``),
and restore them afterwards. So no test, and no subprocess a test starts, writes into the
shared system temp folder, and a test that checks for leaked temporaries looks only in its
own ``test_tmpdir`` (never in ``/tmp``, where other processes on the machine create files).
"""

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP", "DASK_TEMPORARY_DIRECTORY")


@contextmanager
def temp_space(folder: Path) -> Iterator[Path]:
    """Make ``folder`` the temp folder of this process and of the processes it starts, then restore."""
    import dask.config

    saved_env = {name: os.environ.get(name) for name in TEMP_VARIABLES}
    saved_tempdir = tempfile.tempdir
    os.environ.update({name: str(folder) for name in TEMP_VARIABLES})
    tempfile.tempdir = str(folder)
    try:
        with dask.config.set({"temporary-directory": str(folder)}):
            yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The temp folder while session- and module-scoped fixtures run (outside any one test)."""
    with temp_space(tmp_path_factory.mktemp("session-tmpdir")) as folder:
        yield folder


@pytest.fixture(autouse=True)
def test_tmpdir(session_tmpdir: Path, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator[Path]:
    """This test's own temp folder (``$TMPDIR``, ``tempfile``, Dask), empty at the start; a
    leak check of the test looks here. Separate from ``tmp_path``, whose listing stays the test's."""
    name = re.sub(r"\W", "_", request.node.name)[:30]
    with temp_space(tmp_path_factory.mktemp(f"tmpdir-{name}", numbered=True)) as folder:
        yield folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for tests of tiny tensors, restored afterwards.

    On a busy 2-core machine, OpenMP spinning of two threads made tiny convolutions
    up to ~150x slower; modules that train or run small networks opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_cn_tilt_series(folder, truth, angles, *, dataset: str = "cn.test", n_angles: int | None = None):
    """Project ``truth`` at ``angles`` into ``folder``: ts.mrc, ts.tlt (``n_angles`` spread over the same range
    to fake a count mismatch) and gt.mrc, 10 Å voxels; return the ``tiltseries`` sheet row asking for cn."""
    import numpy as np

    from cryo_pipeline.config.dataset import DatasetRow
    from cryo_pipeline.io.mrc import write_mrc
    from cryo_pipeline.ops.projector import project_3d

    write_mrc(folder / "ts.mrc", project_3d(truth, angles), voxel_size_angstrom=10.0)
    listed = angles if n_angles is None else np.linspace(angles[0], angles[-1], n_angles)
    (folder / "ts.tlt").write_text("\n".join(f"{a:g}" for a in listed) + "\n")
    write_mrc(folder / "gt.mrc", truth, voxel_size_angstrom=10.0)
    return DatasetRow(dataset=dataset, kind="tiltseries", source=str(folder / "ts.mrc"), angles=str(folder / "ts.tlt"),
                      voxel_size_angstrom=10.0, tilt_min_deg=float(angles[0]), tilt_max_deg=float(angles[-1]),
                      methods=("cn",))


@pytest.fixture(scope="session")
def cn_tilt_series():
    """:func:`write_cn_tilt_series`: a tiny projected phantom and its sheet row, for the CN stage tests."""
    return write_cn_tilt_series


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back (``cli.main`` reconfigures logging in-process)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class HttpMirror:
    """A local HTTP server on 127.0.0.1 (free port) serving bytes under URL paths, like the
    EMPIAR mirror (``/empiar/world_availability/<entry>/data/...``). Never the network.

    It answers ``Range: bytes=N-`` with 206 (or 416 past the end) unless ``ignore_range``
    is set. Per path, ``fail_with[path]`` is a list of HTTP statuses answered first (one per
    request) and ``drop_after[path]`` a list of byte counts after which the connection is
    closed mid-body (one per request). ``send_length = False`` leaves out Content-Length (the
    body then ends when the connection closes). ``requests`` records ``(path, headers)`` of every GET.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.fail_with: dict[str, list[int]] = {}
        self.drop_after: dict[str, list[int]] = {}
        self.ignore_range = False
        self.send_length = True
        self.chunk_delay_s = 0.0
        self.requests: list[tuple[str, dict[str, str]]] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                mirror._serve(self)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def _serve(self, handler) -> None:
        import re
        import time
        from urllib.parse import urlsplit

        path = urlsplit(handler.path).path
        self.requests.append((path, dict(handler.headers)))
        if self.fail_with.get(path):
            handler.send_error(self.fail_with[path].pop(0))
            return
        data = self.files.get(path)
        if data is None:
            handler.send_error(404)
            return
        start, ranged = 0, handler.headers.get("Range")
        if ranged and not self.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if self.send_length:
            handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if self.drop_after.get(path):
            handler.wfile.write(body[: self.drop_after[path].pop(0)])
            handler.close_connection = True
            return
        step = max(1, len(body) // 20) if self.chunk_delay_s else len(body) or 1
        for offset in range(0, len(body), step):
            handler.wfile.write(body[offset:offset + step])
            handler.wfile.flush()
            time.sleep(self.chunk_delay_s)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def http_mirror() -> Iterator[HttpMirror]:
    """A running :class:`HttpMirror`, shut down after the test."""
    mirror = HttpMirror()
    yield mirror
    mirror.close()
