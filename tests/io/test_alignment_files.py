"""IMOD .xf/.xtilt and AreTomo .aln readers: real layouts, a library round trip, the science, bad input."""

import numpy as np
import pytest
from alnfile.data_model import AlnData
from alnfile.data_model.dark_frames import DarkFrameInfo
from alnfile.data_model.global_alignments import TiltImageAlignmentParameters

from cryo_pipeline.io.aretomo_aln import alignment_from_aln, read_aln, write_aln
from cryo_pipeline.io.imod_alignment import alignment_from_xf, read_xf, read_xtilt, write_xf, xf_from_alignment
from cryo_pipeline.ops.blob_projections import blob_tilt_series, random_blobs
from cryo_pipeline.ops.fsc import fourier_shell_correlation
from cryo_pipeline.ops.image_alignment import TiltAlignment, align_stack, rotation_matrix_xy
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

ANGLES = np.arange(-60.0, 61.0, 3.0)
SHAPE_YX = (48, 48)
DEPTH = 32

# The first rows of AreTomo's layout as it writes them (teamtomo/alnfile's test data has the same header).
ALN_TEXT = """# AreTomo Alignment / Priims bprmMn
# RawSize = 4096 4096 4
# NumPatches = 0
# DarkFrame =     0    1   -63.20
# AlphaOffset =    -7.00
# BetaOffset =     0.00
# Thickness = 2050
# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
    2   -95.4040    1.00000     18.660     84.977     1.00     1.00     1.00     0.00    -61.20
    3   -95.4040    1.00000      5.624     80.787     1.00     1.00     1.00     0.00    -59.20
    4   -95.4040    1.00000     13.706     62.872     1.00     1.00     1.00     0.00    -57.20
"""


@pytest.fixture(scope="module")
def misaligned():
    """A blob phantom's raw series: tilt axis near 84 deg, per-view rotation jitter and shifts; its aligned WBP."""
    rng = np.random.default_rng(7)
    blobs = random_blobs(14, radius_px=15, sigma_range_px=(1.3, 2.5), seed=5)
    rotation = 84.0 + rng.uniform(-1.0, 1.0, ANGLES.size)
    shifts = rng.uniform(-6.0, 6.0, (ANGLES.size, 2))
    matrices = np.array([rotation_matrix_xy(r) for r in rotation])
    raw = blob_tilt_series(blobs, ANGLES, image_shape_yx=SHAPE_YX, matrices_xy=matrices, shifts_xy_px=shifts)
    aligned = blob_tilt_series(blobs, ANGLES, image_shape_yx=SHAPE_YX)
    reference = weighted_backprojection_3d(aligned, ANGLES, volume_shape_zyx=(DEPTH, *SHAPE_YX))
    return raw, rotation, shifts, reference


def _fsc_to_half_nyquist(series, angles, reference):
    volume = weighted_backprojection_3d(series, angles, volume_shape_zyx=(DEPTH, *series.shape[1:]))
    dy, dx = ((n - m) // 2 for n, m in zip(volume.shape[1:], SHAPE_YX, strict=True))
    _, fsc = fourier_shell_correlation(volume[:, dy:dy + SHAPE_YX[0], dx:dx + SHAPE_YX[1]], reference)
    return float(fsc[1:min(reference.shape) // 4 + 1].min())


def test_imod_xf_alignment_reconstructs_within_fsc_0_95(tmp_path, misaligned):
    raw, rotation, shifts, reference = misaligned
    # IMOD's relation, written out: aligned a = A q + D with A = R(rot)^T, D = -A s
    a = np.array([rotation_matrix_xy(r).T for r in rotation])
    d = -np.einsum("nij,nj->ni", a, shifts)
    write_xf(tmp_path / "ts.xf", a, d)
    (tmp_path / "ts.xtilt").write_text("0.00\n" * ANGLES.size)
    alignment = alignment_from_xf(tmp_path / "ts.xf", n_images=ANGLES.size, images_path="ts.mrc",
                                  xtilt_path=tmp_path / "ts.xtilt")
    np.testing.assert_allclose(alignment.rotations_deg, rotation, atol=1e-4)
    np.testing.assert_allclose(alignment.shifts_xy_px, shifts, atol=2e-3)
    assert _fsc_to_half_nyquist(align_stack(raw, alignment), ANGLES, reference) > 0.95


def test_aretomo_aln_written_by_alnfile_reconstructs_within_fsc_0_95(tmp_path, misaligned):
    raw, rotation, shifts, reference = misaligned
    aln = AlnData(RawSize=(SHAPE_YX[1], SHAPE_YX[0], ANGLES.size), NumPatches=0, GlobalAlignments=[
        TiltImageAlignmentParameters(sec=k + 1, rot=r, tx=s[0], ty=s[1], tilt=t)
        for k, (r, s, t) in enumerate(zip(rotation, shifts, ANGLES, strict=True))])
    (tmp_path / "ts.aln").write_text(str(aln))
    alignment = alignment_from_aln(tmp_path / "ts.aln", n_images=ANGLES.size, images_path="ts.mrc")
    np.testing.assert_allclose(alignment.tilt_angles_deg, ANGLES, atol=0.005)
    assert _fsc_to_half_nyquist(align_stack(raw, alignment), alignment.tilt_angles_deg, reference) > 0.95


def test_our_aln_writer_round_trips_through_alnfile(tmp_path):
    write_aln(tmp_path / "a.aln", raw_size_xyz=(64, 48, 4), rot_deg=[85.1, 85.2, 85.3], tx_px=[1.5, -2.0, 0.25],
              ty_px=[0.0, 3.125, -1.0], tilt_deg=[-3.0, 0.0, 3.0], sections=[2, 3, 4], dark_frames=((0, -6.0),))
    theirs = AlnData.from_file(tmp_path / "a.aln")
    assert theirs.RawSize == (64, 48, 4)
    assert [(f.section_idx, f.angle) for f in theirs.DarkFrames] == [(0, -6.0)]
    assert [(g.sec, g.rot, g.tx, g.ty, g.tilt) for g in theirs.GlobalAlignments] == [
        (2, 85.1, 1.5, 0.0, -3.0), (3, 85.2, -2.0, 3.125, 0.0), (4, 85.3, 0.25, -1.0, 3.0)]
    ours = read_aln(tmp_path / "a.aln")
    np.testing.assert_array_equal(ours.raw_indices(), [1, 2, 3])


def test_aln_rows_map_to_raw_views_around_dark_frames(tmp_path):
    (tmp_path / "kept.aln").write_text(ALN_TEXT)
    aln = read_aln(tmp_path / "kept.aln")
    assert aln.raw_size_xyz == (4096, 4096, 4) and aln.dark_frames == ((0, -63.2, 4),)
    np.testing.assert_array_equal(aln.raw_indices(), [1, 2, 3])  # AreTomo3: SEC keeps the raw index
    renumbered = ALN_TEXT.replace("    2   -95", "    1   -95").replace("    3   -95", "    2   -95").replace(
        "    4   -95", "    3   -95")
    (tmp_path / "renumbered.aln").write_text(renumbered)
    np.testing.assert_array_equal(read_aln(tmp_path / "renumbered.aln").raw_indices(), [1, 2, 3])
    alignment = alignment_from_aln(tmp_path / "kept.aln", n_images=4, images_path="raw.mrc",
                                   angles_deg=np.array([-61.2, -59.2, -57.2]), angles_path="kept.tlt")
    np.testing.assert_allclose(alignment.rotations_deg, -95.404)
    np.testing.assert_allclose(alignment.shifts_xy_px[0], [18.66, 84.977])


def test_xf_round_trip_through_the_alignment(tmp_path):
    alignment = TiltAlignment(np.array([rotation_matrix_xy(10.0), 1.02 * rotation_matrix_xy(-3.0)]),
                              np.array([[1.0, 2.0], [-3.0, 0.5]]), np.arange(2))
    write_xf(tmp_path / "a.xf", *xf_from_alignment(alignment))
    back = alignment_from_xf(tmp_path / "a.xf", n_images=2, images_path="x.mrc")
    np.testing.assert_allclose(back.matrices_xy, alignment.matrices_xy, atol=1e-6)
    np.testing.assert_allclose(back.shifts_xy_px, alignment.shifts_xy_px, atol=2e-3)


# ---- bad input: one line naming the file, the line and the value -------------------------------------------


def test_xf_line_count_must_match_the_stack(tmp_path):
    write_xf(tmp_path / "ts.xf", np.repeat(np.eye(2)[None], 40, 0), np.zeros((40, 2)))
    with pytest.raises(ValueError, match=r"ts\.xf: 40 transforms \(lines\) but raw\.mrc has 41 images") as err:
        alignment_from_xf(tmp_path / "ts.xf", n_images=41, images_path="raw.mrc")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "match"), [
    ("1 0 0 1 0\n", r"line 1: '1 0 0 1 0' must hold six finite numbers"),
    ("1 0 0 1 0 0\n1 0 0 1 x 0\n", r"line 2: '1 0 0 1 x 0' is not six numbers"),
    ("1 0 0 1 0 0\n0 0 0 0 0 0\n", r"line 2: the matrix .* is singular"),
    ("\n# nothing\n", r"no transforms"),
])
def test_malformed_xf_names_the_line(tmp_path, text, match):
    (tmp_path / "bad.xf").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_xf(tmp_path / "bad.xf")


def test_nonzero_xtilt_is_rejected_naming_its_line(tmp_path):
    (tmp_path / "ts.xtilt").write_text("0.00\n0.00\n1.50\n")
    with pytest.raises(ValueError, match=r"ts\.xtilt: line 3: x-axis tilt 1\.5 deg is not supported yet"):
        read_xtilt(tmp_path / "ts.xtilt", n_images=3)


def test_angles_file_listing_an_excluded_view_is_rejected(tmp_path):
    (tmp_path / "ts.aln").write_text(ALN_TEXT)
    with pytest.raises(ValueError, match=r"ts\.tlt: line 1 lists view 1 \(-63\.2 deg\), which .*ts\.aln excludes as "
                                         r"a dark frame \(line 4, -63\.2 deg\)") as err:
        alignment_from_aln(tmp_path / "ts.aln", n_images=4, images_path="raw.mrc",
                           angles_deg=np.array([-63.2, -61.2, -59.2, -57.2]), angles_path=tmp_path / "ts.tlt")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda t: t.replace("# AreTomo Alignment / Priims bprmMn\n", ""), "no '# AreTomo Alignment' header"),
    (lambda t: t.replace("# RawSize = 4096 4096 4\n", ""), r"no '# RawSize = x y n' line"),
    (lambda t: t.replace("13.706", "13.7o6"), r"line 11: .* is not the ten numbers SEC ROT"),
    (lambda t: t.replace("1.00000      5.624", "1.20000      5.624"), r"line 10: GMAG 1\.2 is not supported"),
    (lambda t: t.replace("# RawSize = 4096 4096 4", "# RawSize = 4096 4096 5"), r"RawSize says 5 images but"),
])
def test_malformed_aln_names_the_line(tmp_path, edit, match):
    (tmp_path / "bad.aln").write_text(edit(ALN_TEXT))
    with pytest.raises(ValueError, match=match):
        alignment_from_aln(tmp_path / "bad.aln", n_images=4, images_path="raw.mrc")
