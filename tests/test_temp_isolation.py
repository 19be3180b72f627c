"""Every test owns its temp space (the autouse fixtures of tests/conftest.py), and gives it back."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import dask.config
import pytest

SEEN: dict[str, str] = {}


@pytest.mark.parametrize("run", ["first", "second"])
def test_temp_folder_is_the_tests_own_for_python_dask_and_subprocesses(run, test_tmpdir, tmp_path):
    folder = str(test_tmpdir)
    assert not os.listdir(folder)  # fresh and empty
    assert tempfile.gettempdir() == folder
    assert all(os.environ[name] == folder for name in ("TMPDIR", "TEMP", "TMP"))
    assert dask.config.get("temporary-directory") == folder
    child = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == folder
    with tempfile.NamedTemporaryFile() as handle:  # what library code creates lands here
        assert os.path.dirname(handle.name) == folder
    assert folder != str(tmp_path) and not list(tmp_path.iterdir())  # tmp_path's listing stays the test's own
    SEEN[run] = folder
    if len(SEEN) == 2:
        assert SEEN["first"] != SEEN["second"]  # one folder per test, not per session


def test_temp_space_is_restored_when_it_ends(request, test_tmpdir, session_tmpdir, tmp_path):
    [temp_space] = {plugin.temp_space for plugin in request.config.pluginmanager.get_plugins()
                    if hasattr(plugin, "temp_space")}  # tests/conftest.py's, as the autouse fixtures use it
    inner = tmp_path / "inner"
    inner.mkdir()
    with temp_space(inner):
        assert tempfile.gettempdir() == os.environ["TMPDIR"] == dask.config.get("temporary-directory") == str(inner)
    assert tempfile.gettempdir() == os.environ["TMPDIR"] == dask.config.get("temporary-directory") == str(test_tmpdir)
    assert test_tmpdir.parent == session_tmpdir.parent  # both under pytest's base temp, not the shared /tmp
