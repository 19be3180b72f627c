"""Tests for atomic writes: complete output or nothing, never a stray temp."""

from __future__ import annotations

import os

import pytest

from cryo_pipeline.io.atomic import atomic_write_bytes, atomic_write_path, atomic_write_text


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_appears_only_on_success(tmp_path):
    final = tmp_path / "sub dir" / "out.v1.txt"
    with atomic_write_path(final) as tmp:
        assert tmp.parent == final.parent
        assert tmp.name.startswith(".out.v1.txt.tmp-")
        assert not tmp.exists()
        tmp.write_text("hello")
        assert not final.exists()
    assert final.read_text() == "hello"
    assert _names(final.parent) == ["out.v1.txt"]


def test_exception_leaves_no_final_and_no_temp(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"), atomic_write_path(final) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert _names(tmp_path) == []


def test_exception_keeps_previous_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(KeyError), atomic_write_path(final) as tmp:
        tmp.write_text("new")
        raise KeyError("x")
    assert final.read_text() == "old"
    assert _names(tmp_path) == ["out.txt"]


def test_directory_target_created_and_replaced(tmp_path):
    final = tmp_path / "vol.zarr"
    for version in ("a", "b"):
        with atomic_write_path(final) as tmp:
            tmp.mkdir()
            (tmp / "data").write_text(version)
            (tmp / f"only_{version}").write_text("")
        assert (final / "data").read_text() == version
    assert _names(final) == ["data", "only_b"]
    assert _names(tmp_path) == ["vol.zarr"]


def test_directory_exception_removes_temp_tree_and_keeps_old(tmp_path):
    final = tmp_path / "vol.zarr"
    final.mkdir()
    (final / "data").write_text("old")
    with pytest.raises(ValueError), atomic_write_path(final) as tmp:
        (tmp / "deep" / "er").mkdir(parents=True)
        raise ValueError("fail")
    assert (final / "data").read_text() == "old"
    assert _names(tmp_path) == ["vol.zarr"]


def test_nothing_written_is_an_error(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_write_path(final):
        pass
    assert _names(tmp_path) == []


def test_text_and_bytes_helpers(tmp_path):
    atomic_write_text(tmp_path / "a" / "t.txt", "µ line\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01\xff")
    assert (tmp_path / "a" / "t.txt").read_bytes() == "µ line\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01\xff"
    atomic_write_text(tmp_path / "a" / "t.txt", "second")
    assert (tmp_path / "a" / "t.txt").read_text() == "second"
    assert _names(tmp_path / "a") == ["t.txt"]


def test_temp_names_are_unique_per_call(tmp_path):
    final = tmp_path / "x"
    with atomic_write_path(final) as t1, atomic_write_path(final) as t2:
        assert t1 != t2
        assert str(os.getpid()) in t1.name
        t1.write_text("1")
        t2.write_text("2")
    assert final.read_text() == "1"  # outer context commits last
    assert _names(tmp_path) == ["x"]
