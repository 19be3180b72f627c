"""Fuzzing the tilt-angle reader (issue 8, item 1): .tlt/.rawtlt lists and SerialEM .mdoc files.

Files are built from structured strategies whose expected result is known: a list of
lines (angles in many spellings, blank lines, comments, non-numbers, NaN/Inf, angles
beyond ±90), CRLF/CR/LF line ends, a UTF-8 byte-order mark; mdoc sections with a
TiltAngle, none, two, a bad one, repeated or shuffled ZValues. The contract:

* a **correct read**: the angles in file order (``.mdoc``: ZValue order), duplicates and
  unsorted angles kept as given (the tilt series' image order is the truth);
* or a **clear error**: one-line ``ValueError`` naming the file and, for a bad line, its
  number — never another exception, a hang (``SIGALRM`` deadline) or a silent drop.

Hypothesis runs derandomised without a database; each test counts and asserts its cases
(``pytest -rP`` prints them).
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles, write_tilt_angles

from .conftest import deadline, record_cases, run_examples






def _clear_error(err: BaseException, path: Path) -> str:
    message = str(err)
    assert isinstance(err, ValueError), f"{type(err).__name__} is not a user error: {message}"
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and len(message) < 400, message
    return message


def _read(path: Path, counts: Counter) -> np.ndarray | str:
    """read_tilt_angles under a deadline: the angles, or the (checked) error message."""
    with deadline():
        try:
            angles = read_tilt_angles(path)
        except ValueError as err:
            counts["error"] += 1
            return _clear_error(err, path)
    counts["read"] += 1
    assert angles.dtype == np.float64 and angles.ndim == 1 and angles.size > 0
    assert np.all(np.abs(angles) <= 90.0)
    return angles


# ------------------------------------------------------------------ .tlt / .rawtlt lists

ANGLE = st.floats(-90.0, 90.0, allow_nan=False)
SPELLINGS = st.sampled_from(["repr", "2f", "plus", "exp", "pad", "int"])
# tokens float() refuses, or accepts as NaN/Inf/|x| > 90
BAD_TOKENS = ["abc", "30o", "1,5", "--1", "nan", "NaN", "inf", "-inf", "Infinity", "90.0001", "-95", "1e3", "180",
              "0x10", "−60", "30 40", "30,", "TiltAngle = 5", "\x00", "1..2", "-", "+", ".", "e5"]
COMMENT_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


def _spell(value: float, spelling: str) -> tuple[str, float]:
    """A text for ``value`` and the value that text means."""
    if spelling == "2f":
        text = f"{value:.2f}"
    elif spelling == "plus":
        text = f"+{value:.3f}" if value >= 0 else f"{value:.3f}"
    elif spelling == "exp":
        text = f"{value:.4e}"
    elif spelling == "pad":
        text = f"  \t{value!r}  "
    elif spelling == "int":
        text = str(int(value))
    else:
        text = repr(value)
    return text, float(text)


LINES = st.one_of(
    st.tuples(st.just("angle"), ANGLE, SPELLINGS),
    st.tuples(st.just("angle+comment"), ANGLE, COMMENT_TEXT),
    st.tuples(st.just("blank"), st.sampled_from(["", " ", "\t", "   \t "])),
    st.tuples(st.just("comment"), COMMENT_TEXT),
    st.tuples(st.just("bad"), st.sampled_from(BAD_TOKENS)),
)


def _build_list(lines, newline: str, bom: bool, final_newline: bool) -> tuple[bytes, list[float], int | None]:
    """File bytes, the angles it holds and the number of the first bad line (or None)."""
    texts, angles, first_bad = [], [], None
    for number, line in enumerate(lines, start=1):
        kind = line[0]
        if kind == "angle":
            text, value = _spell(line[1], line[2])
            angles.append(value)
        elif kind == "angle+comment":
            text, value = _spell(line[1], "repr")
            text += f" # {line[2]}"
            angles.append(value)
        elif kind == "blank":
            text = line[1]
        elif kind == "comment":
            text = f"# {line[1]}"
        else:
            text = line[1]
            first_bad = first_bad or number
        texts.append(text)
    body = newline.join(texts) + (newline if final_newline else "")
    return ("\ufeff" if bom else "").encode() + body.encode(), angles, first_bad


def test_tilt_angle_lists(tmp_path, request):
    counts: Counter = Counter()
    cases = [0]

    @given(lines=st.lists(LINES, max_size=40), newline=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(),
           final_newline=st.booleans(), suffix=st.sampled_from([".tlt", ".rawtlt", ".TLT", ".xtilt", ""]))
    def run(lines, newline, bom, final_newline, suffix):
        cases[0] += 1
        raw, angles, first_bad = _build_list(lines, newline, bom, final_newline)
        path = tmp_path / f"TS_01.10.00Apx{suffix}"
        path.write_bytes(raw)
        got = _read(path, counts)
        if first_bad is not None:
            assert isinstance(got, str) and got.startswith(f"{path}: line {first_bad}: "), got
            assert "is not a number" in got or "outside [-90, 90]" in got
        elif not angles:
            assert isinstance(got, str) and "no tilt angles" in got, got
        else:
            assert not isinstance(got, str), got
            np.testing.assert_array_equal(got, angles)  # file order, duplicates kept

    run_examples(run, 300)
    record_cases(request, "tlt_lists", counts, cases[0], 300)
    assert counts["read"] > 50 and counts["error"] > 50


def test_unsorted_and_duplicated_angles_are_kept_in_file_order(tmp_path):
    values = [0.0, 3.0, -3.0, 6.0, -6.0, 6.0, 0.0]  # dose-symmetric order with repeats
    path = tmp_path / "dose_symmetric.rawtlt"
    path.write_text("\n".join(map(str, values)) + "\n")
    np.testing.assert_array_equal(read_tilt_angles(path), values)


def test_bom_and_crlf(tmp_path):
    """A Windows editor's file (BOM, CRLF) reads like any other; the BOM used to make line 1 'not a number'."""
    path = tmp_path / "windows.tlt"
    path.write_bytes("\ufeff-60.00\r\n0.00\r\n60.00\r\n".encode())
    np.testing.assert_array_equal(read_tilt_angles(path), [-60.0, 0.0, 60.0])
    mdoc = tmp_path / "windows.mdoc"
    mdoc.write_bytes("\ufeff[ZValue = 0]\r\nTiltAngle = -3\r\n\r\n[ZValue = 1]\r\nTiltAngle = 3\r\n".encode())
    np.testing.assert_array_equal(read_tilt_angles(mdoc), [-3.0, 3.0])


# ------------------------------------------------------------------ .mdoc

TILT_STATES = st.sampled_from(["ok", "ok", "ok", "missing", "bad", "nan", "beyond", "two"])
EXTRA_LINES = st.lists(st.sampled_from(["ExposureDose = 3.5", "StagePosition = 10.2 -3.1", "Magnification = 42000",
                                        "SubFramePath = X:\\frames\\TS_01_000_-0.0.tif", "", "  ",
                                        "DateTime = 21-Nov-26  12:00:01"]), max_size=3)
OTHER_SECTIONS = st.sampled_from(["[T = SerialEM: Digitized on EMBL Krios  TiltAngle = 99]", "[FrameSet = 0]",
                                  "[T = Tilt axis angle = 85.3, binning = 1]", "[MontSection = 0]"])
SECTION = st.tuples(st.integers(-3, 60), TILT_STATES, ANGLE, EXTRA_LINES, st.booleans(), OTHER_SECTIONS)


def _build_mdoc(header_lines, sections, newline, bom) -> tuple[bytes, list[float] | None]:
    """File bytes and the angles in ZValue order, or None when the file must be refused."""
    lines = list(header_lines)
    by_z: dict[int, float] = {}
    ok = True
    for z, state, angle, extra, other_after, other in sections:
        lines.append(f"[ZValue = {z}]" if z % 3 else f"[ZValue={z}]")
        lines.extend(extra[:1])
        if state == "ok":
            lines.append(f"TiltAngle = {angle!r}")
        elif state == "bad":
            lines.append("TiltAngle = 12.5deg")
        elif state == "nan":
            lines.append("TiltAngle = nan")
        elif state == "beyond":
            lines.append("TiltAngle = 91.5")
        elif state == "two":
            lines.extend([f"TiltAngle = {angle!r}", f"TiltAngle = {angle!r}"])
        lines.extend(extra[1:])
        if other_after:  # a TiltAngle in a non-ZValue section is not an image's angle
            lines.extend([other, "TiltAngle = 45"])
        ok = ok and state == "ok" and z not in by_z
        by_z[z] = float(repr(angle))
    text = newline.join(lines) + newline
    expected = [by_z[z] for z in sorted(by_z)] if ok and by_z else None
    return ("\ufeff" if bom else "").encode() + text.encode(), expected


def test_mdoc_files(tmp_path, request):
    counts: Counter = Counter()
    cases = [0]
    header = st.lists(st.sampled_from(["PixelSpacing = 5.4", "Voltage = 300", "ImageFile = TS_01.mrc",
                                       "ImageSize = 1024 1024", "TiltAngle = 0", "DataMode = 1", ""]), max_size=4)

    @given(header_lines=header, sections=st.lists(SECTION, max_size=12), newline=st.sampled_from(["\n", "\r\n"]),
           bom=st.booleans(), clean=st.booleans(), order=st.randoms(use_true_random=False))
    def run(header_lines, sections, newline, bom, clean, order):
        cases[0] += 1
        if clean:  # a well-formed file: distinct ZValues in shuffled order, one good TiltAngle each
            zs = list(range(len(sections)))
            order.shuffle(zs)
            sections = [(z, "ok", *rest) for z, (_, _, *rest) in zip(zs, sections, strict=True)]
        raw, expected = _build_mdoc(header_lines, sections, newline, bom)
        path = tmp_path / "TS_01.mrc.mdoc"
        path.write_bytes(raw)
        got = _read(path, counts)
        if expected is None:
            assert isinstance(got, str), f"accepted a broken mdoc: {got}"
            assert " line " in got or "no [ZValue = n] section" in got, got
        else:
            assert not isinstance(got, str), got
            np.testing.assert_array_equal(got, expected)  # ZValue order

    run_examples(run, 250)
    record_cases(request, "mdoc", counts, cases[0], 250)
    assert counts["read"] > 30 and counts["error"] > 50


def test_arbitrary_bytes(tmp_path, request):
    """Any bytes (UTF-8 or not) as .tlt/.rawtlt/.mdoc: a read within [-90, 90] or a clear error."""
    counts: Counter = Counter()
    cases = [0]

    @given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=300).map(str.encode)),
           suffix=st.sampled_from([".tlt", ".rawtlt", ".mdoc"]))
    def run(raw, suffix):
        cases[0] += 1
        path = tmp_path / f"fuzz{suffix}"
        path.write_bytes(raw)
        _read(path, counts)

    run_examples(run, 200)
    record_cases(request, "angle_bytes", counts, cases[0], 200)


# ------------------------------------------------------------------ size, non-files, counts


def test_huge_files_are_read_in_bounded_time(tmp_path):
    texts = [f"{v:.4f}" for v in np.linspace(-90, 90, 200_001)]
    many = [float(t) for t in texts]
    path = tmp_path / "huge.tlt"
    path.write_text("\n".join(texts) + "\n")
    start = time.process_time()  # CPU seconds of this process: the same on an idle or a busy machine
    with deadline(30):
        np.testing.assert_array_equal(read_tilt_angles(path), many)
    assert time.process_time() - start < 20
    line = tmp_path / "one_long_line.tlt"  # 8 MB without a newline: refused, message kept short
    line.write_text("1" * 8_000_000)
    with deadline(30), pytest.raises(ValueError) as err:
        read_tilt_angles(line)
    assert _clear_error(err.value, line).startswith(f"{line}: line 1: ")


def test_things_that_are_not_angle_files(tmp_path):
    folder = tmp_path / "things"
    (folder / "a_directory.tlt").mkdir(parents=True)
    os.mkfifo(folder / "pipe.tlt")  # read_bytes() would block on it forever
    (folder / "latin1.tlt").write_bytes("10.0\n# caf\xe9\n".encode("latin-1"))
    (folder / "empty.mdoc").write_bytes(b"")
    (folder / "empty.tlt").write_bytes(b"")
    (folder / "comments_only.tlt").write_text("# nothing here\n\n")
    expected = {"a_directory.tlt": "not a regular file", "pipe.tlt": "not a regular file",
                "absent.tlt": "No such file", "latin1.tlt": "not a text file", "empty.mdoc": "no [ZValue = n]",
                "empty.tlt": "no tilt angles", "comments_only.tlt": "no tilt angles"}
    for name, fragment in expected.items():
        path = folder / name
        with deadline(5), pytest.raises(ValueError) as err:
            read_tilt_angles(path)
        assert fragment in _clear_error(err.value, path), name


def test_check_angles_match_names_both_files_and_counts(tmp_path, request):
    counts: Counter = Counter()
    cases = [0]

    @given(n_angles=st.integers(1, 200), n_images=st.integers(0, 200))
    def run(n_angles, n_images):
        cases[0] += 1
        angles_path = tmp_path / "my angles.10.00Apx.tlt"
        write_tilt_angles(angles_path, np.linspace(-60, 60, n_angles))
        angles = read_tilt_angles(angles_path)
        images = tmp_path / "my series.st"
        if n_angles == n_images:
            check_angles_match(angles, n_images, angles_path=angles_path, images_path=images)
            counts["match"] += 1
            return
        with pytest.raises(ValueError) as err:
            check_angles_match(angles, n_images, angles_path=angles_path, images_path=images)
        assert str(err.value).startswith(f"tilt angles ({n_angles}) in {angles_path} do not match tilt images "
                                         f"({n_images}) in {images}")
        counts["error"] += 1

    run_examples(run, 60)
    record_cases(request, "check_angles_match", counts, cases[0], 60)


def test_written_angles_read_back(tmp_path):
    """The writer's 2-decimal files read back to the rounded values (no drift, no silent change)."""
    values = np.array([-60.004, -0.005, 0.0, 1e-9, 59.995, 89.999])
    path = tmp_path / "w.tlt"
    write_tilt_angles(path, values)
    got = read_tilt_angles(path)
    np.testing.assert_array_equal(got, [float(f"{v:.2f}") for v in values])
    assert all(math.isfinite(v) for v in got)
