"""Stage functions called directly: the per-row logic (which tilts, which angles, which
voxel size) on small synthetic data and on the real maps/tilt series in ../shared/data/real."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import EvaluateConfig, ProjectConfig, SimulateConfig, WbpConfig
from cryo_pipeline.io.angles import write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, read_mrc_header, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta
from cryo_pipeline.ops.tilts import select_tilts_in_range
from cryo_pipeline.stages import evaluate, project_tilt_series, reconstruct_wbp, simulate_volume

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
BETAGAL = REAL / "betagal_ngl_100px_3.54A.mrc"
NEEDLE = REAL / "tiltseries_haadf_needle_etspy.mrc"
NEEDLE_ANGLES = REAL / "tiltseries_haadf_needle_etspy.rawtlt"


def _row(**values) -> DatasetRow:
    base = {"dataset": "d", "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}
    return DatasetRow.model_validate({**base, **values})


# --- ops.tilts.select_tilts_in_range ------------------------------------------------------
def test_select_tilts_keeps_the_sheets_range_of_a_wider_series():
    angles = np.arange(-76.0, 77.0, 2.0)  # the STEM series: 77 tilts
    keep = select_tilts_in_range(angles, tilt_min_deg=-60, tilt_max_deg=60)
    assert keep.size == 61
    np.testing.assert_array_equal(keep, np.arange(8, 69))
    assert (angles[keep].min(), angles[keep].max()) == (-60.0, 60.0)


def test_select_tilts_asymmetric_range_and_tolerance():
    angles = np.array([-50.0, -40.02, -40.005, 0.0, 30.0, 45.009, 45.02, 60.0])
    keep = select_tilts_in_range(angles, tilt_min_deg=-40, tilt_max_deg=45)
    np.testing.assert_array_equal(keep, [2, 3, 4, 5])  # within 0.01 deg of the ends counts as inside


def test_select_tilts_keeps_unsorted_order():
    angles = np.array([0.0, 3.0, -3.0, 6.0, -6.0, 9.0, -9.0])  # dose-symmetric order
    keep = select_tilts_in_range(angles, tilt_min_deg=-6, tilt_max_deg=6)
    np.testing.assert_array_equal(keep, [0, 1, 2, 3, 4])


@pytest.mark.parametrize(("lo", "hi", "n"), [(-1.0, 1.0, 1), (80.0, 89.0, 0)])
def test_select_tilts_needs_two(lo, hi, n):
    angles = np.arange(-76.0, 77.0, 2.0)
    with pytest.raises(ValueError, match=rf"only {n} tilt\(s\) of -76\.\.76 deg lie inside the sheet's range"):
        select_tilts_in_range(angles, tilt_min_deg=lo, tilt_max_deg=hi)


# --- evaluate.measured_angles_deg ----------------------------------------------------------
def test_measured_angles_fourier_are_continuous_at_nyquist():
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=5, corruption="fourier",
               tilt_min_deg=-45, tilt_max_deg=60, tilt_step_deg=3)
    cfg = EvaluateConfig()
    small = evaluate.measured_angles_deg(row, cfg=cfg, shape_zyx=(64, 64, 64))
    # 2/64 rad = 1.79 deg > default 1 deg: the default step wins; the sheet's 3 deg is ignored
    np.testing.assert_allclose(small, np.arange(-45.0, 60.5, 1.0))
    big = evaluate.measured_angles_deg(row, cfg=cfg, shape_zyx=(100, 300, 200))
    steps = np.diff(big)
    assert big[0] == -45.0 and big[-1] == 60.0
    assert steps.max() <= np.degrees(2.0 / 300) + 1e-9  # planes <= 1 voxel apart at Nyquist of the largest axis
    assert steps.min() > 0


def test_measured_angles_tiltseries_corruption_use_the_sheets_step():
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=5, corruption="tiltseries",
               tilt_min_deg=-60, tilt_max_deg=60, tilt_step_deg=3)
    angles = evaluate.measured_angles_deg(row, cfg=EvaluateConfig(), shape_zyx=(64, 64, 64))
    np.testing.assert_allclose(angles, np.arange(-60.0, 61.0, 3.0))
    no_step = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=5, corruption="fourier")
    coarse = evaluate.measured_angles_deg(no_step, cfg=EvaluateConfig(default_tilt_step_deg=4.0), shape_zyx=(8, 8, 8))
    # 2/8 rad = 14 deg: the 4 deg default is finer, so it is used
    np.testing.assert_allclose(coarse, np.arange(-60.0, 61.0, 4.0))


def test_measured_angles_real_tilt_series_come_from_its_file(tmp_path):
    angles_file = tmp_path / "ts.rawtlt"
    file_angles = np.array([0.0, 2.0, -2.0, 58.0, -58.0, 60.0, -60.0, 62.0, -62.0, 70.0])
    write_tilt_angles(angles_file, file_angles)
    row = _row(kind="tiltseries", source=str(tmp_path / "ts.mrc"), angles=str(angles_file), tilt_step_deg=7)
    angles = evaluate.measured_angles_deg(row, cfg=EvaluateConfig(), shape_zyx=(64, 64, 64))
    np.testing.assert_allclose(angles, [0.0, 2.0, -2.0, 58.0, -58.0, 60.0, -60.0])


# --- simulate_volume ----------------------------------------------------------------------
def test_simulate_rejects_non_synthetic(tmp_path):
    row = _row(kind="tomogram", source="t.mrc", methods="cryogen")
    with pytest.raises(ValueError, match="simulate_volume needs kind 'synthetic', got tomogram"):
        simulate_volume.run(dataset=row, cfg=SimulateConfig(), out=tmp_path / "gt.mrc")
    assert list(tmp_path.iterdir()) == []


def test_simulate_phantom_is_deterministic(tmp_path):
    row = _row(kind="synthetic", source="mixed_shapes", voxel_size_angstrom=8, corruption="fourier",
               shape_px="24x32x32", seed=5)
    simulate_volume.run(dataset=row, cfg=SimulateConfig(), out=tmp_path / "a.mrc")
    simulate_volume.run(dataset=row, cfg=SimulateConfig(), out=tmp_path / "b.mrc")
    simulate_volume.run(dataset=row.model_copy(update={"seed": 6}), cfg=SimulateConfig(), out=tmp_path / "c.mrc")
    a, b, c = (read_mrc(tmp_path / f"{n}.mrc") for n in "abc")
    assert a.data.shape == (24, 32, 32) and a.voxel_size_angstrom == pytest.approx(8.0, rel=1e-6)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.data.std() > 0 and not np.array_equal(a.data, c.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mrc", "b.json", "b.mrc", "c.json", "c.mrc"]


@pytest.fixture(scope="module")
def betagal() -> Path:
    if not BETAGAL.is_file():
        pytest.skip(f"real map {BETAGAL} is absent")
    return BETAGAL


def _map_row(path: Path, seed: int = 0) -> DatasetRow:
    return _row(kind="synthetic", source=str(path), corruption="fourier", seed=seed)


def _face_median(volume: np.ndarray) -> float:
    faces = [volume[[0, -1]], volume[:, [0, -1]], volume[:, :, [0, -1]]]
    return float(np.median(np.concatenate([f.ravel() for f in faces])))


def test_simulate_real_map_keeps_voxel_size_and_normalises(tmp_path, betagal):
    out = tmp_path / "gt.mrc"
    simulate_volume.run(dataset=_map_row(betagal), cfg=SimulateConfig(), out=out)
    truth = read_mrc(out)
    assert truth.data.shape == (100, 100, 100)
    assert truth.voxel_size_angstrom == pytest.approx(3.54, rel=1e-6)
    # solvent (median of the box faces) -> 0, peak -> 1
    assert truth.data.max() == pytest.approx(1.0, rel=1e-6)
    assert _face_median(truth.data) == pytest.approx(0.0, abs=1e-6)
    assert -1.0 < truth.data.min() < 0.0  # density below the solvent level survives (no clipping)
    record = read_stage_meta(meta_path_for(out))
    assert record["stage"] == "simulate_volume" and record["dataset"]["source"] == str(betagal)


def test_simulate_real_map_rotation_changes_the_map_but_keeps_its_energy(tmp_path, betagal):
    raw = read_mrc(betagal).data
    cfg = SimulateConfig(map_normalize=False)
    simulate_volume.run(dataset=_map_row(betagal, seed=0), cfg=cfg, out=tmp_path / "r0.mrc")
    simulate_volume.run(dataset=_map_row(betagal, seed=1), cfg=cfg, out=tmp_path / "r1.mrc")
    unrotated = tmp_path / "plain.mrc"
    simulate_volume.run(dataset=_map_row(betagal), cfg=SimulateConfig(map_normalize=False, map_random_rotation=False),
                        out=unrotated)
    np.testing.assert_array_equal(read_mrc(unrotated).data, raw)
    energy = float(np.sum(raw.astype(np.float64) ** 2))
    rotated = [read_mrc(tmp_path / f"r{s}.mrc").data for s in (0, 1)]
    for volume in rotated:
        # a rotation is an isometry: interpolation and the corners lose a little, not 5 %
        assert float(np.sum(volume.astype(np.float64) ** 2)) == pytest.approx(energy, rel=0.05)
        # but the map moved: β-gal's own 180° symmetries correlate at 0.92, a random rotation far less
        assert np.corrcoef(volume.ravel(), raw.ravel())[0, 1] < 0.85
    assert np.corrcoef(rotated[0].ravel(), rotated[1].ravel())[0, 1] < 0.85


# --- project_tilt_series ------------------------------------------------------------------
def test_project_needs_a_tilt_step(tmp_path):
    volume = tmp_path / "v.mrc"
    write_mrc(volume, np.ones((8, 8, 8), np.float32), voxel_size_angstrom=2.0)
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=2, corruption="fourier")
    with pytest.raises(ValueError, match="dataset d: project_tilt_series needs tilt_step_deg in the sheet"):
        project_tilt_series.run(volume_path=volume, dataset=row, cfg=ProjectConfig(), out=tmp_path / "o" / "ts.mrc",
                                angles_out=tmp_path / "o" / "ts.tlt")
    assert not (tmp_path / "o").exists()


def test_project_detector_width_and_noise_are_seeded(tmp_path):
    volume = tmp_path / "v.mrc"
    write_mrc(volume, np.random.default_rng(0).random((10, 6, 12), dtype=np.float32), voxel_size_angstrom=2.0)
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=2, corruption="tiltseries",
               tilt_min_deg=-30, tilt_max_deg=45, tilt_step_deg=15, snr=2.0, seed=3)
    outs = []
    for name in ("a", "b"):
        project_tilt_series.run(volume_path=volume, dataset=row, cfg=ProjectConfig(detector_width_px=16),
                                out=tmp_path / f"{name}.mrc", angles_out=tmp_path / f"{name}.tlt")
        outs.append(read_mrc(tmp_path / f"{name}.mrc").data)
    assert outs[0].shape == (6, 6, 16)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert (tmp_path / "a.tlt").read_text().split() == ["-30.00", "-15.00", "0.00", "15.00", "30.00", "45.00"]
    assert read_stage_meta(tmp_path / "a.json")["volume_shape_zyx"] == [10, 6, 12]


# --- reconstruct_wbp ------------------------------------------------------------------------
def test_wbp_thickness_from_reference_or_config(tmp_path):
    rng = np.random.default_rng(1)
    series = tmp_path / "ts.mrc"
    write_mrc(series, rng.random((7, 5, 12), dtype=np.float32), voxel_size_angstrom=3.0)
    angles = tmp_path / "ts.tlt"
    write_tilt_angles(angles, np.linspace(-60, 60, 7))
    reference = tmp_path / "ref.mrc"
    write_mrc(reference, np.zeros((9, 5, 12), np.float32), voxel_size_angstrom=3.0)
    row = _row(kind="tiltseries", source=str(series), angles=str(angles), methods="wbp")
    cases = {"ref": (reference, WbpConfig(thickness_px=20), 9), "cfg": (None, WbpConfig(thickness_px=4), 4),
             "width": (None, WbpConfig(), 12)}
    for name, (ref, cfg, depth) in cases.items():
        out = tmp_path / f"{name}.mrc"
        reconstruct_wbp.run(tilt_series_path=series, angles_path=angles, dataset=row, cfg=cfg, out=out,
                            reference_volume_path=ref)
        assert read_mrc_header(out)["shape_zyx"] == (depth, 5, 12), name


@pytest.fixture(scope="module")
def needle() -> tuple[Path, Path]:
    if not (NEEDLE.is_file() and NEEDLE_ANGLES.is_file()):
        pytest.skip(f"real tilt series {NEEDLE} is absent")
    return NEEDLE, NEEDLE_ANGLES


def test_wbp_on_the_real_stem_tilt_series(tmp_path, needle):
    series, angles = needle
    assert read_mrc_header(series)["voxel_size_angstrom"] == pytest.approx(1.0)  # the header is wrong ...
    row = _row(kind="tiltseries", source=str(series), angles=str(angles), voxel_size_angstrom=33.6, methods="wbp")
    out = tmp_path / "needle_wbp.mrc"
    reconstruct_wbp.run(tilt_series_path=series, angles_path=angles, dataset=row, cfg=WbpConfig(thickness_px=64),
                        out=out)
    volume = read_mrc(out)
    assert volume.data.shape == (64, 256, 256)
    assert volume.voxel_size_angstrom == pytest.approx(33.6, rel=1e-6)  # ... the sheet's value wins
    assert np.isfinite(volume.data).all() and volume.data.std() > 0
    record = json.loads(meta_path_for(out).read_text())
    assert record["n_tilts_used"] == 61
    assert record["stage"] == "reconstruct_wbp" and record["config"]["thickness_px"] == 64
    assert record["dataset"]["voxel_size_angstrom"] == 33.6
    assert record["runtime_s"] > 0


# --- evaluate ---------------------------------------------------------------------------------
def test_evaluate_rejects_a_shape_mismatch_and_writes_nothing(tmp_path):
    write_mrc(tmp_path / "v.mrc", np.ones((8, 8, 8), np.float32), voxel_size_angstrom=2.0)
    write_mrc(tmp_path / "gt.mrc", np.ones((8, 8, 10), np.float32), voxel_size_angstrom=2.0)
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=2, corruption="fourier")
    with pytest.raises(ValueError, match=r"has shape \(8, 8, 8\) but the ground truth .*gt\.mrc has \(8, 8, 10\)"):
        evaluate.run(volume_path=tmp_path / "v.mrc", dataset=row, method="wbp", cfg=EvaluateConfig(),
                     out=tmp_path / "o" / "m.tsv", curves_out=tmp_path / "o" / "c.json",
                     ground_truth_path=tmp_path / "gt.mrc")
    assert not (tmp_path / "o").exists()


def test_evaluate_perfect_volume_scores_perfectly(tmp_path):
    truth = np.zeros((17, 17, 17), np.float32)
    truth[5:12, 4:13, 6:11] = 1.0
    write_mrc(tmp_path / "gt.mrc", truth, voxel_size_angstrom=2.0)
    scaled = tmp_path / "v.mrc"
    write_mrc(scaled, 3.0 * truth + 0.5, voxel_size_angstrom=2.0)  # same volume on another intensity scale
    row = _row(kind="synthetic", source="hollow_sphere", voxel_size_angstrom=2, corruption="fourier")
    evaluate.run(volume_path=scaled, dataset=row, method="x", cfg=EvaluateConfig(), out=tmp_path / "m.tsv",
                 curves_out=tmp_path / "c.json", ground_truth_path=tmp_path / "gt.mrc")
    import pandas as pd

    (metrics,) = pd.read_csv(tmp_path / "m.tsv", sep="\t").to_dict(orient="records")
    assert metrics["fit_a"] == pytest.approx(1 / 3, rel=1e-4) and metrics["fit_b"] == pytest.approx(-1 / 6, abs=1e-4)
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["psnr_db"] > 60
