"""Fuzzing the MRC reader (issue 8, item 1): bad input gives a correct read or one clear error.

Every case writes a valid MRC with :func:`write_mrc`, corrupts it (header fields, byte
order stamp, truncation, appended junk, flipped bytes, random bytes, NaN/Inf voxels,
voxel size fields, odd file names, things that are not files) and runs
:func:`read_mrc_header`, :func:`read_mrc` and :func:`read_mrc_memmap` on it. The contract:

* either a **correct read**: data and voxel size equal what an independent, ``struct``-based
  reading of the MRC2014 layout (:func:`_specified_read`) says the bytes hold;
* or a **clear error**: ``ValueError`` (``MrcFormatError`` is one), one line, naming the
  path; the CLI turns it into ``error: ...`` and exit 2;
* never another exception type, a hang (each case runs under a ``SIGALRM`` deadline that
  interrupts it, unlike Hypothesis' own deadline) or an allocation of a giant declared size.

The outcome (read or error) must also be the one the specification gives, so a valid file
the reader rejects fails as much as a corrupt one it accepts. Hypothesis runs derandomised
with no example database, so every run tries the same cases; each test counts its cases
and asserts the count (``pytest -rP`` shows them).
"""

from __future__ import annotations

import os
import struct
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryo_pipeline.cli.main import main
from cryo_pipeline.io.mrc import MrcFormatError, read_mrc, read_mrc_header, read_mrc_memmap, write_mrc

from .conftest import deadline, record_cases, run_examples

HEADER_BYTES = 1024

_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
_KNOWN_MODES = set(_MODES) | {3, 4, 101}  # 3, 4, 101: MRC modes the reader names as unsupported
# int32 header words (byte offsets of MRC2014) and the float32 ones
INT_FIELDS = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "mx": 28, "my": 32, "mz": 36, "mapc": 64, "mapr": 68,
              "maps": 72, "ispg": 88, "nsymbt": 92, "nversion": 108, "nlabl": 220}
FLOAT_FIELDS = {"cella_x": 40, "cella_y": 44, "cella_z": 48, "origin_x": 196, "origin_y": 200, "origin_z": 204,
                "dmin": 76, "dmax": 80, "dmean": 84, "rms": 216}
SPECIAL_INTS = [0, 1, -1, 2, 3, 4, 5, 6, 7, 12, 16, 99, 101, 401, 1024, 2**24, 2**31 - 1, -(2**31), 0x02000000]
SPECIAL_FLOATS = [0.0, -0.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf"), 2.5]
ALLOWED = (ValueError,)  # MrcFormatError and FileNotFoundError-like messages are ValueErrors here



# ------------------------------------------------------------------ the specification (oracle)


def _specified_read(raw: bytes) -> tuple[str, object, float]:
    """What MRC2014 (read permissively, as documented in cryo_pipeline.io.mrc) says ``raw`` holds.

    Returns ``("error", reason, nan)`` or ``("ok", zyx float32 data, x voxel size)``.
    Independent of the reader: plain ``struct`` and ``numpy.frombuffer`` on the bytes.
    """
    nan = float("nan")
    if len(raw) < HEADER_BYTES:
        return "error", "shorter than a header", nan
    first = ">" if raw[212] == 0x11 else "<"  # machine stamp; else the other order if its mode is valid
    for order in (first, "<" if first == ">" else ">"):
        mode = struct.unpack_from(order + "i", raw, 12)[0]
        if mode in _KNOWN_MODES:
            break
    else:
        return "error", "no MRC mode in either byte order", nan
    if mode not in _MODES:
        return "error", "unsupported mode", nan
    nx, ny, nz = struct.unpack_from(order + "3i", raw, 0)
    nsymbt = struct.unpack_from(order + "i", raw, 92)[0]
    if min(nx, ny, nz) <= 0 or nsymbt < 0:
        return "error", "dimensions", nan
    n_voxels = nx * ny * nz
    if n_voxels > 2**31:
        return "error", "giant", nan
    dtype = np.dtype(_MODES[mode]).newbyteorder(order)
    offset = HEADER_BYTES + nsymbt
    if len(raw) < offset + n_voxels * dtype.itemsize:
        return "error", "truncated", nan
    data = np.frombuffer(raw, dtype=dtype, count=n_voxels, offset=offset).reshape(nz, ny, nx)
    axis_map = struct.unpack_from(order + "3i", raw, 64)  # mapc, mapr, maps
    if sorted(axis_map) != [1, 2, 3]:
        axis_map = (1, 2, 3)
    stored = (axis_map[2], axis_map[1], axis_map[0])  # spatial axis (1 = x) of array axes 0, 1, 2
    data = data.transpose([stored.index(a) for a in (3, 2, 1)]).astype(np.float32)
    mx = struct.unpack_from(order + "i", raw, 28)[0]
    cella_x = struct.unpack_from(order + "f", raw, 40)[0]
    return "ok", data, (cella_x / mx if mx > 0 else 0.0)


def _valid_voxel(value: float) -> bool:
    """A voxel size the reader takes from a header: finite and within 0.001..1e5 Å (else corrupt)."""
    return bool(np.isfinite(value) and 1e-3 <= value <= 1e5)


def _clear_error(err: BaseException, path: Path) -> str:
    message = str(err)
    assert isinstance(err, ALLOWED), f"{type(err).__name__} is not a user error: {message}"
    assert str(path) in message, f"the message does not name {path}: {message}"
    assert "\n" not in message and message.strip() == message
    return message


def check_readers(path: Path, counts: Counter) -> str:
    """Run the three readers on ``path`` and check them against the specification.

    Returns ``"read"`` or ``"error"`` (what ``read_mrc`` did); ``counts`` gets one entry per
    reader and outcome.
    """
    raw = path.read_bytes()
    outcome, expected, voxel = _specified_read(raw)
    with deadline():
        # header: fails exactly where the specification fails
        try:
            header = read_mrc_header(path)
        except ALLOWED as err:
            _clear_error(err, path)
            assert outcome == "error", f"read_mrc_header rejected a readable file: {err}"
            counts["read_mrc_header:error"] += 1
        else:
            assert outcome == "ok", f"read_mrc_header accepted a file that is {expected}"
            assert header["shape_zyx"] == expected.shape
            counts["read_mrc_header:read"] += 1
        # full read: as specified, NaN/Inf refused with their count
        try:
            volume = read_mrc(path, allow_missing_voxel_size=True)
        except ALLOWED as err:
            message = _clear_error(err, path)
            if outcome == "ok":
                n_bad = int(expected.size - np.count_nonzero(np.isfinite(expected)))
                assert n_bad and f"{n_bad} of {expected.size} voxels are NaN or Inf" in message, message
            read = "error"
        else:
            assert outcome == "ok", f"read_mrc accepted a file that is {expected}"
            np.testing.assert_array_equal(volume.data, expected)
            assert volume.data.dtype == np.float32 and volume.data.flags.c_contiguous
            if _valid_voxel(voxel):
                assert volume.voxel_size_angstrom == voxel
            else:
                assert volume.voxel_size_angstrom == 0.0  # unknown, said so, never silently 1
            read = "read"
        counts[f"read_mrc:{read}"] += 1
        # memory map: the same bytes, unconverted, NaN kept; the override makes the voxel size moot
        try:
            mapped, mapped_voxel = read_mrc_memmap(path, voxel_size_angstrom=1.5)
        except ALLOWED as err:
            _clear_error(err, path)
            assert outcome == "error", f"read_mrc_memmap rejected a readable file: {err}"
            counts["read_mrc_memmap:error"] += 1
        else:
            assert outcome == "ok"
            np.testing.assert_array_equal(np.asarray(mapped, dtype=np.float32), expected)
            assert mapped_voxel == 1.5
            del mapped
            counts["read_mrc_memmap:read"] += 1
    return read


# ------------------------------------------------------------------ strategies

DTYPES = st.sampled_from([np.float32, np.int8, np.int16, np.uint16, np.float16])


@st.composite
def valid_files(draw) -> tuple[bytes, tuple[int, int, int]]:
    """Bytes of a valid MRC (small, any supported mode, seeded values, 2.5 Å voxels)."""
    dtype = draw(DTYPES)
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = (rng.standard_normal(shape) * 30).astype(dtype)
    return data, shape


def _write_valid(folder: Path, data: np.ndarray, name: str = "case.mrc") -> Path:
    path = folder / name
    write_mrc(path, data, voxel_size_angstrom=2.5, origin_angstrom=(1.0, -2.0, 3.0))
    return path




# ------------------------------------------------------------------ header fields


def test_corrupted_header_fields(tmp_path, request):
    """Any int32/float32 header word set to special or arbitrary values, the stamp changed."""
    counts: Counter = Counter()
    cases = [0]
    ints = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers(-(2**31), 2**31 - 1))
    floats = st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(width=32))
    edits = st.lists(st.one_of(st.tuples(st.sampled_from(sorted(INT_FIELDS)), ints),
                               st.tuples(st.sampled_from(sorted(FLOAT_FIELDS)), floats)), min_size=1, max_size=4)

    @given(case=valid_files(), edits=edits, stamp=st.sampled_from([None, None, 0x44, 0x11, 0x00, 0xFF]))
    def run(case, edits, stamp):
        cases[0] += 1
        path = _write_valid(tmp_path, case[0])
        raw = bytearray(path.read_bytes())
        for field, value in edits:
            if field in INT_FIELDS:
                struct.pack_into("<i", raw, INT_FIELDS[field], value)
            else:
                struct.pack_into("<f", raw, FLOAT_FIELDS[field], value)
        if stamp is not None:
            raw[212] = stamp
        path.write_bytes(bytes(raw))
        counts["case:" + check_readers(path, counts)] += 1

    run_examples(run, 400)
    record_cases(request, "header_fields", counts, cases[0], 400)
    assert counts["case:read"] > 20 and counts["case:error"] > 50  # both kinds were exercised


def test_volume_stack_space_groups_with_any_mz(tmp_path, request):
    """ispg 401 (volume stack) with mz 0, mz > nz or mz not dividing nz: read as nz sections.

    mrcfile derives the shape (nz // mz, mz, ny, nx) and failed here (ZeroDivisionError,
    'cannot reshape'); the reader now reads the block as the checked header declares it.
    """
    counts: Counter = Counter()
    cases = [0]

    @given(case=valid_files(), ispg=st.sampled_from([0, 1, 401, 402, 630]), mz=st.integers(-2, 9))
    def run(case, ispg, mz):
        cases[0] += 1
        path = _write_valid(tmp_path, case[0])
        raw = bytearray(path.read_bytes())
        struct.pack_into("<i", raw, INT_FIELDS["ispg"], ispg)
        struct.pack_into("<i", raw, INT_FIELDS["mz"], mz)
        path.write_bytes(bytes(raw))
        assert check_readers(path, counts) == "read"
        np.testing.assert_array_equal(read_mrc(path, voxel_size_angstrom=1.0).data, case[0].astype(np.float32))

    run_examples(run, 60)
    record_cases(request, "volume_stack", counts, cases[0], 60)


# ------------------------------------------------------------------ sizes: truncation, junk, flips


def test_truncated_or_extended_files(tmp_path, request):
    """Cut at any byte offset (always an error unless nothing was cut) or junk appended (ignored)."""
    counts: Counter = Counter()
    cases = [0]

    @given(case=valid_files(), cut=st.floats(0.0, 1.0), junk=st.binary(max_size=300), extend=st.booleans())
    def run(case, cut, junk, extend):
        cases[0] += 1
        path = _write_valid(tmp_path, case[0])
        raw = path.read_bytes()
        if extend:
            raw = raw + junk
        else:
            raw = raw[: int(cut * (len(raw) - 1))]
        path.write_bytes(raw)
        outcome = check_readers(path, counts)
        assert outcome == ("read" if extend else "error")
        counts[f"case:{outcome}"] += 1
        if not extend:
            with pytest.raises(MrcFormatError, match="not an MRC file|truncated MRC file"):
                read_mrc_header(path)

    run_examples(run, 150)
    record_cases(request, "truncated_extended", counts, cases[0], 150)


def test_flipped_bytes_anywhere(tmp_path, request):
    """1–8 random bytes of header or data overwritten: the reader agrees with the specification."""
    counts: Counter = Counter()
    cases = [0]

    @given(case=valid_files(), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)),
                                               min_size=1, max_size=8))
    def run(case, flips):
        cases[0] += 1
        path = _write_valid(tmp_path, case[0])
        raw = bytearray(path.read_bytes())
        for where, value in flips:
            raw[int(where * (len(raw) - 1))] = value
        path.write_bytes(bytes(raw))
        counts["case:" + check_readers(path, counts)] += 1

    run_examples(run, 200)
    record_cases(request, "flipped_bytes", counts, cases[0], 200)


def test_arbitrary_bytes(tmp_path, request):
    """Random bytes, alone or after a valid header: never anything but an error or a specified read."""
    counts: Counter = Counter()
    cases = [0]

    @given(payload=st.binary(max_size=4096), keep_header=st.booleans(), case=valid_files())
    def run(payload, keep_header, case):
        cases[0] += 1
        path = tmp_path / "bytes.mrc"
        if keep_header:
            raw = _write_valid(tmp_path, case[0]).read_bytes()[:HEADER_BYTES] + payload
        else:
            raw = payload
        path.write_bytes(raw)
        counts["case:" + check_readers(path, counts)] += 1

    run_examples(run, 150)
    record_cases(request, "arbitrary_bytes", counts, cases[0], 150)


@pytest.mark.parametrize(
    ("nx", "ny", "nz", "nsymbt"),
    [(2**31 - 1, 1, 1, 0), (2**31 - 1, 2**31 - 1, 2**31 - 1, 0), (46341, 46341, 1, 0), (1290, 1290, 1290, 0),
     (4, 5, 3, 2**31 - 1), (-(2**31), 5, 3, 0), (4, 5, 3, -1), (2**16, 2**15, 1, 0)],
)
def test_giant_declared_sizes_allocate_nothing(tmp_path, nx, ny, nz, nsymbt):
    """A header declaring GiBs of data on a small file fails before any allocation."""
    path = _write_valid(tmp_path, np.zeros((3, 5, 4), np.float32))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<4i", raw, 0, nx, ny, nz, 2)
    struct.pack_into("<i", raw, INT_FIELDS["nsymbt"], nsymbt)
    path.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        for reader in (read_mrc_header, read_mrc, read_mrc_memmap):
            with deadline(), pytest.raises(MrcFormatError) as err:
                reader(path)
            _clear_error(err.value, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB allocated for a corrupt header"


# ------------------------------------------------------------------ NaN / Inf voxels


def test_nan_and_inf_voxels(tmp_path, request):
    """read_mrc refuses NaN/Inf naming the file and the count; the memmap reads them faithfully."""
    counts: Counter = Counter()
    cases = [0]
    bad_values = st.sampled_from([np.nan, np.inf, -np.inf])

    @given(case=valid_files(), where=st.lists(st.tuples(st.floats(0.0, 1.0), bad_values), min_size=1, max_size=6),
           float16=st.booleans())
    def run(case, where, float16):
        cases[0] += 1
        dtype = np.float16 if float16 else np.float32
        data = np.clip(case[0].astype(np.float32), -1000, 1000).astype(dtype)
        for position, value in where:
            data.flat[int(position * (data.size - 1))] = value
        n_bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        path = tmp_path / "nan.mrc"
        finite = np.where(np.isfinite(data), data, 0).astype(dtype)
        write_mrc(path, finite, voxel_size_angstrom=3.0)  # the writer refuses NaN: patch the data block
        raw = bytearray(path.read_bytes())
        raw[HEADER_BYTES:] = data.tobytes()
        path.write_bytes(bytes(raw))
        with deadline():
            assert read_mrc_header(path)["shape_zyx"] == data.shape
            with pytest.raises(MrcFormatError) as err:
                read_mrc(path)
            assert f"{n_bad} of {data.size} voxels are NaN or Inf" in _clear_error(err.value, path)
            mapped, _ = read_mrc_memmap(path)
            np.testing.assert_array_equal(np.asarray(mapped), data)  # NaN == NaN here
            del mapped
            with pytest.raises(MrcFormatError) as err:
                read_mrc_memmap(path, require_finite=True)
            assert f"{n_bad} of {data.size} voxels are NaN or Inf" in _clear_error(err.value, path)
        counts["read_mrc:error"] += 1
        counts["read_mrc_memmap:read"] += 1
        counts["read_mrc_memmap(require_finite):error"] += 1

    run_examples(run, 80)
    record_cases(request, "nan_inf", counts, cases[0], 80)


def test_require_finite_passes_finite_and_integer_data(tmp_path):
    for dtype in (np.float32, np.float16, np.int16):
        data = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
        path = _write_valid(tmp_path, data, name=f"ok_{np.dtype(dtype).name}.mrc")
        mapped, voxel = read_mrc_memmap(path, require_finite=True)
        np.testing.assert_array_equal(np.asarray(mapped), data)
        assert voxel == 2.5


# ------------------------------------------------------------------ voxel size


def test_voxel_size_fields(tmp_path, request):
    """cella / mx of any value: a positive finite size is read, anything else needs an override."""
    counts: Counter = Counter()
    cases = [0]

    @given(cella=st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(width=32)),
           mx=st.sampled_from([0, -1, 1, 4, 10**6, 2**31 - 1]), override=st.sampled_from([None, 6.25]),
           bad_override=st.sampled_from([0.0, -1.0, float("nan"), float("inf")]))
    def run(cella, mx, override, bad_override):
        cases[0] += 1
        data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
        path = _write_valid(tmp_path, data)
        raw = bytearray(path.read_bytes())
        struct.pack_into("<f", raw, FLOAT_FIELDS["cella_x"], cella)
        struct.pack_into("<i", raw, INT_FIELDS["mx"], mx)
        path.write_bytes(bytes(raw))
        _, _, voxel = _specified_read(bytes(raw))
        with deadline():
            for reader in (read_mrc, read_mrc_memmap):
                try:
                    result = reader(path, voxel_size_angstrom=override)
                except ALLOWED as err:
                    message = _clear_error(err, path)
                    assert override is None and not _valid_voxel(voxel), message
                    assert "has no voxel size" in message or "is implausible" in message, message
                    assert "voxel_size_angstrom column" in message  # says how to fix it
                    counts[f"{reader.__name__}:error"] += 1
                else:
                    got = result.voxel_size_angstrom if reader is read_mrc else result[1]
                    assert got == (override if override is not None else voxel) and _valid_voxel(got)
                    counts[f"{reader.__name__}:read"] += 1
                with pytest.raises(ValueError) as err:  # a bad override is never used
                    reader(path, voxel_size_angstrom=bad_override)
                assert "must be a positive number" in _clear_error(err.value, path)
            stored = read_mrc_header(path)["voxel_size_angstrom"]
            assert stored == voxel or (np.isnan(stored) and np.isnan(voxel))  # as stored, checked by the readers

    run_examples(run, 120)
    record_cases(request, "voxel_size", counts, cases[0], 120)


# ------------------------------------------------------------------ names and non-files

NAMES = ["tomo_10.00Apx.rec", "my tomo.mrc", "a.b.c.st", "TS_01.mrc.ali", ".hidden.map", "tomo..mrcs",
         "naïve tomo (1).mrc", "日本語.mrc", "tomo;rm -rf.mrc", "x" * 180 + ".mrc", "-leading-dash.mrc",
         "trailing space .mrc", "tab\tname.mrc", "quote'\"name.mrc", "no_extension"]
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00")


def test_file_names(tmp_path, request):
    """Dots, spaces, unicode, shell characters: a correct read; an error names the path exactly."""
    counts: Counter = Counter()
    cases = [0]

    @given(name=st.one_of(st.sampled_from(NAMES), st.text(NAME_CHARS, min_size=1, max_size=40)),
           suffix=st.sampled_from(["", ".mrc", ".rec", ".st", ".ali", ".map", ".mrcs", ".10.00Apx.mrc"]),
           truncate=st.booleans())
    def run(name, suffix, truncate):
        name = (name + suffix).strip()
        if name in ("", ".", "..") or len(name.encode()) > 200:
            name = "fallback.mrc"
        cases[0] += 1
        folder = tmp_path / "names"
        folder.mkdir(exist_ok=True)
        data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        path = _write_valid(folder, data, name=name)
        assert [p.name for p in folder.iterdir()] == [name]  # no temporary left under another name
        if truncate:
            path.write_bytes(path.read_bytes()[:-5])
        outcome = check_readers(path, counts)
        assert outcome == ("error" if truncate else "read")
        if not truncate:
            np.testing.assert_array_equal(read_mrc(path).data, data)
            assert read_mrc(path).voxel_size_angstrom == 2.5
        path.unlink()

    run_examples(run, 120)
    record_cases(request, "file_names", counts, cases[0], 120)


def _not_files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "things"
    (folder / "a_directory.mrc").mkdir(parents=True)
    (folder / "empty.mrc").write_bytes(b"")
    (folder / "header_only.mrc").write_bytes(bytes(HEADER_BYTES))
    os.mkfifo(folder / "pipe.mrc")  # open() would block on it forever
    (folder / "link_to_dir.mrc").symlink_to(folder / "a_directory.mrc")
    (folder / "dangling.mrc").symlink_to(folder / "absent.mrc")
    return {"directory": folder / "a_directory.mrc", "empty": folder / "empty.mrc",
            "header only": folder / "header_only.mrc", "named pipe": folder / "pipe.mrc",
            "link to a directory": folder / "link_to_dir.mrc", "dangling link": folder / "dangling.mrc",
            "missing": folder / "absent.mrc", "missing folder": folder / "nope" / "x.mrc",
            "file as folder": folder / "empty.mrc" / "x.mrc"}


def test_things_that_are_not_mrc_files(tmp_path):
    for what, path in _not_files(tmp_path).items():
        for reader in (read_mrc_header, read_mrc, read_mrc_memmap):
            with deadline(5), pytest.raises(MrcFormatError) as err:
                reader(path)
            message = _clear_error(err.value, path)
            assert any(s in message for s in ("cannot open", "not an MRC file", "invalid MRC header")), (what, message)


# ------------------------------------------------------------------ the command line


def _corruptions(tmp_path: Path) -> dict[str, Path]:
    data = np.random.default_rng(3).standard_normal((10, 12, 12)).astype(np.float32)
    files = {}
    for kind in ("truncated", "mode 4", "mode 99", "giant nx", "nsymbt past EOF", "voxel size 0", "NaN voxels",
                 "random bytes", "volume stack mz 0"):
        path = _write_valid(tmp_path / "cli", data, name=f"in {kind}.10.00Apx.mrc")
        raw = bytearray(path.read_bytes())
        if kind == "truncated":
            raw = raw[:-7]
        elif kind.startswith("mode"):
            struct.pack_into("<i", raw, 12, int(kind.split()[1]))
        elif kind == "giant nx":
            struct.pack_into("<i", raw, 0, 2**31 - 1)
        elif kind == "nsymbt past EOF":
            struct.pack_into("<i", raw, 92, 10**6)
        elif kind == "voxel size 0":
            struct.pack_into("<f", raw, 40, 0.0)
        elif kind == "NaN voxels":
            struct.pack_into("<2f", raw, HEADER_BYTES + 40, np.nan, np.inf)
        elif kind == "random bytes":
            raw = bytearray(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
        elif kind == "volume stack mz 0":
            struct.pack_into("<i", raw, 88, 401)
            struct.pack_into("<i", raw, 36, 0)
        path.write_bytes(bytes(raw))
        files[kind] = path
    return files


@pytest.mark.usefixtures("restore_logging")
def test_cli_on_corrupted_tomograms(tmp_path, capsys, request):
    """``cryo-pipeline bin-tomogram`` (the first stage a user tomogram meets): exit 2, one line naming it."""
    row = ('{"dataset": "t", "kind": "tomogram", "source": "x.mrc", "tilt_min_deg": -60, "tilt_max_deg": 60}')
    n_cases = 0
    for kind, path in _corruptions(tmp_path).items():
        out = tmp_path / "out" / kind.replace(" ", "_") / "b.mrc"
        with deadline():
            status = main(["bin-tomogram", "--tomogram", str(path), "--dataset-json", row, "--out", str(out)])
        captured = capsys.readouterr()
        n_cases += 1
        if kind == "volume stack mz 0":  # a readable file: binned like any other
            assert status == 0, captured.err
            continue
        assert status == 2, (kind, captured.err)
        errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and str(path) in errors[0], (kind, captured.err)
        assert "Traceback" not in captured.err
        if kind == "NaN voxels":
            assert "2 of 1440 voxels are NaN or Inf" in errors[0]
        if kind == "voxel size 0":
            assert "has no voxel size" in errors[0]
        assert not out.parent.exists() or not any(out.parent.iterdir()), f"{kind}: something was written"
    record_cases(request, "cli_bin_tomogram", Counter(exit_2=n_cases - 1, exit_0=1), n_cases, 9)


# ------------------------------------------------------------------ the bench harness (bench/fuzz_readers.py)


def test_bench_fuzz_readers_quick_run_finds_no_crash(request):
    """``python -m bench fuzz_readers --quick`` with the in-process mutator (atheris is optional)."""
    import sys

    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:  # bench/ is a top-level folder, not part of the installed package
        sys.path.insert(0, str(repo))
    from bench.fuzz_readers import fuzz_readers

    result = fuzz_readers(quick=True, engine="random")
    rows = {row["target"]: row for row in result.rows}
    assert sorted(rows) == ["mdoc", "mrc", "tlt"]
    for target, row in rows.items():
        assert row["crashes"] == 0, (target, row["first_crash"])
        assert row["reads"] > 0 and row["errors"] > 0 and row["reads"] + row["errors"] == row["runs"] == 300
    record_cases(request, "bench_random", Counter({t: r["runs"] for t, r in rows.items()}), 900, 900)


@pytest.mark.usefixtures("restore_logging")
def test_cli_output_where_a_file_blocks_the_folder(tmp_path, capsys):
    """An output path under a file: exit 2 and one line naming it (was a FileExistsError traceback)."""
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    row = ('{"dataset": "syn", "kind": "synthetic", "source": "hollow_sphere", "voxel_size_angstrom": 4, '
           '"tilt_min_deg": -60, "tilt_max_deg": 60, "corruption": "fourier", "shape_px": "8"}')
    assert main(["simulate-volume", "--dataset-json", row, "--out", str(blocker / "syn" / "g.mrc")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {blocker}"), err
    assert lines[0].endswith(": Not a directory (a file is where a folder should be)"), err
    assert "Traceback" not in err and blocker.read_text() == "not a folder"
