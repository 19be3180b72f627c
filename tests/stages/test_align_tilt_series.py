"""Stage align_tilt_series: tilt axis at 90 deg (identical to the hand transpose, and on the real STEM needle),
an oblique axis, AreTomo .aln with an excluded view and IMOD .xf end to end through reconstruct_wbp, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import AlignConfig, WbpConfig
from cryo_pipeline.io.angles import read_tilt_angles
from cryo_pipeline.io.aretomo_aln import write_aln
from cryo_pipeline.io.imod_alignment import write_xf, xf_from_alignment
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.binning import fourier_rescale_3d
from cryo_pipeline.ops.blob_projections import blob_tilt_series, random_blobs
from cryo_pipeline.ops.fsc import fourier_shell_correlation
from cryo_pipeline.ops.image_alignment import TiltAlignment, rotation_matrix_xy
from cryo_pipeline.stages import align_tilt_series, reconstruct_wbp

REPO = Path(__file__).resolve().parents[2]
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
NEEDLE = REAL / "tiltseries_haadf_needle_etspy.mrc"
NEEDLE_ANGLES = REAL / "tiltseries_haadf_needle_etspy.rawtlt"
ANGLES = np.arange(-60.0, 61.0, 4.0)
SHAPE_YX = (40, 48)
DEPTH = 24


@pytest.fixture(scope="module")
def blobs():
    return random_blobs(10, radius_px=13, sigma_range_px=(1.3, 2.5), seed=4)


def _row(name="t", **columns):
    base = dict(dataset=name, kind="tiltseries", source="raw.mrc", angles="raw.tlt", tilt_min_deg=-60,
                tilt_max_deg=60, methods=("wbp",))
    return DatasetRow(**{**base, **columns})


def _series(blobs, rotation_deg=0.0, shifts=None):
    matrices = np.array([rotation_matrix_xy(r) for r in np.broadcast_to(rotation_deg, ANGLES.shape)])
    return blob_tilt_series(blobs, ANGLES, image_shape_yx=SHAPE_YX, matrices_xy=matrices, shifts_xy_px=shifts)


def _write(folder, name, series, angles=ANGLES):
    write_mrc(folder / f"{name}.mrc", series, voxel_size_angstrom=10.0)
    (folder / f"{name}.tlt").write_text("".join(f"{a:.2f}\n" for a in angles))
    return folder / f"{name}.mrc", folder / f"{name}.tlt"


def _wbp(folder, stack, angles, name):
    row = DatasetRow(dataset="t", kind="tiltseries", source=str(stack), angles=str(angles), voxel_size_angstrom=10.0,
                     tilt_min_deg=-60, tilt_max_deg=60, methods=("wbp",))
    out = folder / f"{name}_wbp.mrc"
    reconstruct_wbp.run(tilt_series_path=stack, angles_path=angles, dataset=row, cfg=WbpConfig(thickness_px=DEPTH),
                        out=out)
    return read_mrc(out).data


def _centre(volume, shape_yx):
    dy, dx = ((n - m) // 2 for n, m in zip(volume.shape[1:], shape_yx, strict=True))
    return volume[:, dy:dy + shape_yx[0], dx:dx + shape_yx[1]]


def _fsc_half_nyquist(volume, reference):
    """FSC on the central region both volumes cover (the aligned frame may be larger or turned)."""
    common = tuple(min(a, b) for a, b in zip(volume.shape[1:], reference.shape[1:], strict=True))
    _, fsc = fourier_shell_correlation(_centre(volume, common), _centre(reference, common))
    return float(fsc[1:min(reference.shape[0], *common) // 4 + 1].min())


def test_axis_along_x_reconstructs_identically_to_the_series_transposed_by_hand(tmp_path, blobs):
    raw = _series(blobs, 90.0)  # tilt axis along x: the images are the y-axis series turned by 90 deg
    stack, tlt = _write(tmp_path, "raw", raw)
    align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, dataset=_row("needle_like", tilt_axis_deg=90),
                          out=tmp_path / "ali.mrc", angles_out=tmp_path / "ali.tlt")
    by_hand, by_hand_tlt = _write(tmp_path, "hand", np.ascontiguousarray(raw.transpose(0, 2, 1)[:, ::-1, :]))
    ours = _wbp(tmp_path, tmp_path / "ali.mrc", tmp_path / "ali.tlt", "ours")
    theirs = _wbp(tmp_path, by_hand, by_hand_tlt, "hand")
    assert ours.shape == theirs.shape == (DEPTH, SHAPE_YX[1], SHAPE_YX[0])
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    record = json.loads((tmp_path / "ali.json").read_text())
    assert record["alignment"]["exact_quarter_turns"] == 1 and record["tilt_axis_deg"] == 90.0
    assert record["stage"] == "align_tilt_series" and record["voxel_size_angstrom"] == 10.0
    assert record["dataset"] == {"dataset": "needle_like", "voxel_size_angstrom": None, "tilt_axis_deg": 90.0}


def test_a_5_degree_axis_gives_fsc_above_0_9_to_half_nyquist(tmp_path, blobs):
    reference = _wbp(tmp_path, *_write(tmp_path, "ref", _series(blobs)), "ref")
    stack, tlt = _write(tmp_path, "raw", _series(blobs, 5.0))
    align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, dataset=_row(tilt_axis_deg=5.0),
                          out=tmp_path / "ali.mrc", angles_out=tmp_path / "ali.tlt")
    aligned = read_mrc(tmp_path / "ali.mrc")
    assert aligned.data.shape[1] >= SHAPE_YX[0] + 4 and aligned.voxel_size_angstrom == 10.0  # nothing cut off
    assert _fsc_half_nyquist(_wbp(tmp_path, tmp_path / "ali.mrc", tmp_path / "ali.tlt", "ali"), reference) > 0.9


def test_aretomo_aln_with_an_excluded_view_and_imod_xf_reconstruct_within_fsc_0_95(tmp_path, blobs):
    rng = np.random.default_rng(3)
    rotation = 85.0 + rng.uniform(-1.0, 1.0, ANGLES.size)
    shifts = rng.uniform(-5.0, 5.0, (ANGLES.size, 2))
    raw = _series(blobs, rotation, shifts)
    raw[0] = 1e3  # a dark (blank) first view that the .aln excludes
    stack, _ = _write(tmp_path, "raw", raw)
    reference = _wbp(tmp_path, *_write(tmp_path, "ref", _series(blobs)[1:], ANGLES[1:]), "ref")
    write_aln(tmp_path / "raw.aln", raw_size_xyz=(SHAPE_YX[1], SHAPE_YX[0], ANGLES.size), rot_deg=rotation[1:],
              tx_px=shifts[1:, 0], ty_px=shifts[1:, 1], tilt_deg=ANGLES[1:], sections=np.arange(2, ANGLES.size + 1),
              dark_frames=((0, ANGLES[0]),))
    align_tilt_series.run(tilt_series_path=stack, alignment_path=tmp_path / "raw.aln",
                          dataset=_row(angles=None, alignment="raw.aln"), out=tmp_path / "aln.mrc",
                          angles_out=tmp_path / "aln.tlt")
    np.testing.assert_allclose(read_tilt_angles(tmp_path / "aln.tlt"), ANGLES[1:])
    volume = _wbp(tmp_path, tmp_path / "aln.mrc", tmp_path / "aln.tlt", "aln")
    assert _fsc_half_nyquist(volume, reference) > 0.95

    alignment = TiltAlignment(np.array([rotation_matrix_xy(r) for r in rotation]), shifts, np.arange(ANGLES.size))
    write_xf(tmp_path / "raw.xf", *xf_from_alignment(alignment))
    stack, tlt = _write(tmp_path, "raw_full", _series(blobs, rotation, shifts))
    align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, alignment_path=tmp_path / "raw.xf",
                          dataset=_row(alignment="raw.xf"), out=tmp_path / "xf.mrc", angles_out=tmp_path / "xf.tlt")
    full_reference = _wbp(tmp_path, *_write(tmp_path, "ref_full", _series(blobs)), "ref_full")
    volume = _wbp(tmp_path, tmp_path / "xf.mrc", tmp_path / "xf.tlt", "xf")
    assert _fsc_half_nyquist(volume, full_reference) > 0.95


def test_the_real_stem_needle_with_its_axis_along_x(tmp_path):
    if not (NEEDLE.is_file() and NEEDLE_ANGLES.is_file()):
        pytest.skip(f"real tilt series {NEEDLE} is absent")
    row = _row("needle_stem", source=str(NEEDLE), angles=str(NEEDLE_ANGLES), voxel_size_angstrom=33.6,
               tilt_axis_deg=90)  # the acquisition log's tilt axis: 90 deg, along x
    align_tilt_series.run(tilt_series_path=NEEDLE, angles_path=NEEDLE_ANGLES, dataset=row,
                          out=tmp_path / "needle.mrc", angles_out=tmp_path / "needle.tlt")
    raw = read_mrc(NEEDLE, voxel_size_angstrom=33.6).data  # the FEI 2003 header, read permissively
    aligned = read_mrc(tmp_path / "needle.mrc")
    assert aligned.data.shape == (77, 256, 256) and aligned.voxel_size_angstrom == pytest.approx(33.6)
    np.testing.assert_array_equal(aligned.data, np.rot90(raw, 1, axes=(1, 2)))  # exact: no interpolation
    np.testing.assert_array_equal(read_tilt_angles(tmp_path / "needle.tlt"), read_tilt_angles(NEEDLE_ANGLES))


def test_binning_and_background_in_the_same_pass(tmp_path, blobs):
    raw = _series(blobs, 90.0) + 1000.0  # axis along x, a detector offset
    stack, tlt = _write(tmp_path, "raw", raw)
    cfg = AlignConfig(bin_factor=2, subtract_background=True)
    align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, dataset=_row(tilt_axis_deg=90), cfg=cfg,
                          out=tmp_path / "bin.mrc", angles_out=tmp_path / "bin.tlt")
    binned = read_mrc(tmp_path / "bin.mrc")
    assert binned.data.shape == (ANGLES.size, SHAPE_YX[1] // 2, SHAPE_YX[0] // 2)
    assert binned.voxel_size_angstrom == 20.0  # the header's 10 A x 2 (no voxel size in the row)
    assert abs(float(np.median(binned.data[:, 0, :]))) < 0.01 * float(raw.max() - 1000.0)  # background ~0
    exact, exact_tlt = _write(tmp_path, "exact", np.ascontiguousarray(np.rot90(raw - 1000.0, 1, axes=(1, 2))))
    reference = fourier_rescale_3d(_wbp(tmp_path, exact, exact_tlt, "exact"),
                                   shape_zyx_out=(DEPTH // 2, SHAPE_YX[1] // 2, SHAPE_YX[0] // 2))
    row = _row(voxel_size_angstrom=20.0)
    out = tmp_path / "bin_wbp.mrc"
    reconstruct_wbp.run(tilt_series_path=tmp_path / "bin.mrc", angles_path=tmp_path / "bin.tlt", dataset=row,
                        cfg=WbpConfig(thickness_px=DEPTH // 2), out=out)
    _, fsc = fourier_shell_correlation(read_mrc(out).data, reference)
    assert float(fsc[1:DEPTH // 8 + 1].min()) > 0.9  # to half the binned Nyquist
    record = json.loads((tmp_path / "bin.json").read_text())
    assert record["alignment"]["bin_factor"] == 2 and record["alignment"]["background_subtracted"]["min"] > 990
    align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, dataset=_row(tilt_axis_deg=90,
                          voxel_size_angstrom=21.0), cfg=cfg, out=tmp_path / "v.mrc", angles_out=tmp_path / "v.tlt")
    assert read_mrc(tmp_path / "v.mrc").voxel_size_angstrom == pytest.approx(21.0)  # the row's: the binned size


def _profile_shift(profile, reference):
    corr = np.fft.irfft(np.fft.rfft(profile - profile.mean()) * np.conj(np.fft.rfft(reference - reference.mean())),
                        n=profile.size)
    k = int(np.argmax(corr))
    left, centre, right = corr[k - 1], corr[k], corr[(k + 1) % profile.size]
    k = k + 0.5 * (left - right) / (left - 2 * centre + right)  # sub-pixel: parabola through the peak
    return k if k < profile.size / 2 else k - profile.size


def _jitter_px(series, angles):
    """rms of (along-axis profile shift vs 0 deg, across-axis centre of mass minus its best sinusoid)."""
    zero = int(np.argmin(np.abs(angles)))
    along = series.sum(axis=2)
    shifts = np.array([_profile_shift(along[i], along[zero]) for i in range(len(series))], dtype=float)
    x = np.arange(series.shape[2])
    com = np.array([(im.sum(axis=0) * x).sum() / im.sum() for im in series])
    theta = np.radians(angles)
    design = np.c_[np.cos(theta), np.sin(theta), np.ones_like(theta)]
    residual = com - design @ np.linalg.lstsq(design, com, rcond=None)[0]
    return float(np.sqrt(np.mean(shifts**2))), float(np.sqrt(np.mean(residual**2)))


def test_the_shipped_needle_xf_aligns_the_real_stem_needle(tmp_path):
    if not (NEEDLE.is_file() and NEEDLE_ANGLES.is_file()):
        pytest.skip(f"real tilt series {NEEDLE} is absent")
    xf = REPO / "config" / "real" / "needle_stem.xf"
    cfg = AlignConfig(bin_factor=4, subtract_background=True)  # as config/config_real.yaml
    row = _row("needle_stem", source=str(NEEDLE), angles=str(NEEDLE_ANGLES), voxel_size_angstrom=134.4)
    align_tilt_series.run(tilt_series_path=NEEDLE, angles_path=NEEDLE_ANGLES, alignment_path=xf, cfg=cfg,
                          dataset=row.model_copy(update={"alignment": str(xf)}), out=tmp_path / "ali.mrc",
                          angles_out=tmp_path / "ali.tlt")
    align_tilt_series.run(tilt_series_path=NEEDLE, angles_path=NEEDLE_ANGLES, cfg=cfg, out=tmp_path / "turned.mrc",
                          dataset=row.model_copy(update={"tilt_axis_deg": 90.0}), angles_out=tmp_path / "turned.tlt")
    angles = read_tilt_angles(NEEDLE_ANGLES)
    aligned = read_mrc(tmp_path / "ali.mrc")
    assert aligned.data.shape == (77, 64, 64) and aligned.voxel_size_angstrom == pytest.approx(134.4)
    along, across = _jitter_px(aligned.data, angles)
    raw_along, raw_across = _jitter_px(read_mrc(tmp_path / "turned.mrc").data, angles)
    # binned pixels (134.4 A); measured 0.01 and 0.32 aligned, 0.96 and 2.5 with the axis turned only
    assert along <= 0.1 and across <= 0.5, (along, across)
    assert raw_along > 0.5 and raw_across > 1.5, (raw_along, raw_across)  # what the .xf corrects


def test_bad_input_is_one_line_with_the_dataset_and_file(tmp_path, blobs):
    stack, tlt = _write(tmp_path, "raw", _series(blobs))
    write_xf(tmp_path / "raw.xf", np.repeat(np.eye(2)[None], 3, 0), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"dataset d1: .*raw\.xf: 3 transforms \(lines\) but .*raw\.mrc has 31 images"):
        align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, alignment_path=tmp_path / "raw.xf",
                              dataset=_row("d1", alignment="raw.xf"), out=tmp_path / "o.mrc",
                              angles_out=tmp_path / "o.tlt")
    with pytest.raises(ValueError, match=r"dataset d1: column tilt_axis_deg \(85\) and column alignment .* both"):
        align_tilt_series.run(tilt_series_path=stack, angles_path=tlt, alignment_path=tmp_path / "raw.xf",
                              dataset=_row("d1", tilt_axis_deg=85.0), out=tmp_path / "o.mrc",
                              angles_out=tmp_path / "o.tlt")
    assert not (tmp_path / "o.mrc").exists() and not (tmp_path / "o.tlt").exists()
