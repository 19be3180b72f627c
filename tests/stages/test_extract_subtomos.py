"""Stages make_mask and extract_subtomos end to end on small synthetic tomograms and on the
real microtubule tomogram in ../shared/data/real: every stored cube is the exact crop at its
table centre, fractions are checked by brute force, bad inputs fail before anything is written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import ExtractConfig, MaskConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta
from cryo_pipeline.io.subtomo_store import open_subtomo_store
from cryo_pipeline.io.tables import read_subtomo_table
from cryo_pipeline.stages import extract_subtomos, make_mask

REAL = Path(__file__).resolve().parents[2].parent / "shared/data/real"
MICROTUBULE = REAL / "tomo_microtubule13pf_cylindra.mrc"
NAME = "tomo_10.00Apx"  # Warp-style name with dots (IsoNet#52)


def _row(name=NAME, seed=0, **values):
    return DatasetRow.model_validate({"dataset": name, "kind": "tomogram", "source": "x.mrc",
                                      "tilt_min_deg": -58.0, "tilt_max_deg": 61.0, "seed": seed, **values})


def _tomogram(tmp_path, shape=(40, 72, 68), *, seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    volume = rng.standard_normal(shape).astype(np.float32) * 0.5 + 3.0
    for _ in range(25):
        c = [rng.uniform(6, s - 6) for s in shape]
        volume[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 25] -= 1.0  # dark density
    path = tmp_path / "in" / f"{NAME}.mrc"
    write_mrc(path, volume, voxel_size_angstrom=7.5)
    return path, volume


def _mask(tmp_path, mask, name="mask.mrc"):
    path = tmp_path / "in" / name
    write_mrc(path, np.asarray(mask).astype(np.int8), voxel_size_angstrom=7.5)
    return path


def _extract(tmp_path, tomo, mask, *, row=None, tag="out", **cfg):
    out = tmp_path / tag
    summary = extract_subtomos.run(tomogram_path=tomo, mask_path=mask, dataset=row or _row(),
                                   cfg=ExtractConfig(**cfg), out_store=out / f"{NAME}.zarr",
                                   out_table=out / f"{NAME}.tsv")
    array, attrs = open_subtomo_store(out / f"{NAME}.zarr")
    return summary, array[...], attrs, read_subtomo_table(out / f"{NAME}.tsv"), out


def _crop(volume, centre, size):
    return volume[tuple(slice(c - size // 2, c - size // 2 + size) for c in centre)]


def _brute_fraction(mask, centre, cube):
    return np.count_nonzero(_crop(mask, centre, cube)) / cube**3


@pytest.fixture
def tomo_and_mask(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    mask_path = tmp_path / "in" / "mask.mrc"
    make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(), out=mask_path)
    return tomo, volume, mask_path, read_mrc(mask_path).data != 0


# --- make_mask --------------------------------------------------------------------------------
def test_make_mask_writes_a_byte_mask_with_the_voxel_size_and_logs_the_fraction(tmp_path, caplog):
    tomo, _ = _tomogram(tmp_path)
    out = tmp_path / "mask" / f"{NAME}.mrc"
    with caplog.at_level(logging.INFO, logger="cryo_pipeline"):
        fraction = make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(z_crop=0.1), out=out)
    mask = read_mrc(out)
    assert mask.voxel_size_angstrom == pytest.approx(7.5)
    assert set(np.unique(mask.data)) == {0.0, 1.0}
    assert not mask.data[:4].any() and not mask.data[-4:].any()  # ⌊0.1 · 40⌋ = 4
    assert fraction == pytest.approx(np.count_nonzero(mask.data) / mask.data.size)
    meta = read_stage_meta(meta_path_for(out))
    assert meta["mask_fraction"] == fraction and meta["density_contrast"] == "dark"
    assert f"mask of {NAME}: {100 * fraction:.1f} % of voxels (density 50 %, std 50 %, z_crop 0.1)" in caplog.text


def test_make_mask_intersects_the_user_mask_and_checks_its_shape(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    user = np.zeros(volume.shape, dtype=np.int8)
    user[:, :36] = 1
    out = tmp_path / "m.mrc"
    make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(), out=out, user_mask_path=_mask(tmp_path, user))
    plain = tmp_path / "plain.mrc"
    make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(), out=plain)
    np.testing.assert_array_equal(read_mrc(out).data, read_mrc(plain).data * user)
    with pytest.raises(ValueError, match=rf"user mask .* of {NAME} is \(40, 72, 60\) voxels but the tomogram"):
        make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(), out=tmp_path / "x.mrc",
                      user_mask_path=_mask(tmp_path, user[:, :, :60], "small.mrc"))
    assert not (tmp_path / "x.mrc").exists()


def test_make_mask_writes_an_empty_mask_with_a_warning(tmp_path, caplog):
    tomo, volume = _tomogram(tmp_path)
    out = tmp_path / "m.mrc"
    with caplog.at_level(logging.WARNING, logger="cryo_pipeline"):
        fraction = make_mask.run(tomogram_path=tomo, dataset=_row(), cfg=MaskConfig(), out=out,
                                 user_mask_path=_mask(tmp_path, np.zeros(volume.shape)))
    assert fraction == 0.0 and read_stage_meta(meta_path_for(out))["mask_fraction"] == 0.0
    assert "is empty; extraction will fail" in caplog.text


# --- extract_subtomos -------------------------------------------------------------------------
def test_every_stored_cube_is_the_crop_at_its_table_centre(tmp_path, tomo_and_mask):
    tomo, volume, mask_path, mask = tomo_and_mask
    summary, cubes, attrs, table, out = _extract(tmp_path, tomo, mask_path, cube_size_px=16, n_subtomos=30,
                                                 enlarge_for_rotation=True, validation_fraction=0.2)
    assert cubes.shape == (30, 24, 24, 24) and len(table) == 30  # 16 → even ⌈16·√2⌉ = 24
    assert table["index"].tolist() == list(range(30))
    for i, row in table.iterrows():
        centre = (row.z, row.y, row.x)
        np.testing.assert_array_equal(cubes[i], _crop(volume, centre, 24))  # raw, exact
        assert mask[centre]
        assert row.mask_fraction == pytest.approx(_brute_fraction(mask, centre, 16), abs=1e-6)
        assert _brute_fraction(mask, centre, 16) >= 0.3
    assert (table["split"] == "val").sum() == 6 == summary["n_val"]
    assert attrs["cube_size_px"] == 24 and attrs["cube_size_core_px"] == 16
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"], attrs["voxel_size_angstrom"]) == (-58.0, 61.0, 7.5)
    assert attrs["source_tomogram"] == str(tomo)
    norm = attrs["normalization"]
    assert norm["mean"] == pytest.approx(volume.mean(dtype=np.float64), rel=1e-9)
    assert norm["std"] == pytest.approx(volume.std(dtype=np.float64), rel=1e-9)
    assert norm["mean_in_mask"] == pytest.approx(volume[mask].mean(dtype=np.float64), rel=1e-9)
    assert norm["std_in_mask"] == pytest.approx(volume[mask].std(dtype=np.float64), rel=1e-9)
    meta = json.loads(meta_path_for(out / f"{NAME}.zarr").read_text())
    assert meta["stage"] == "extract_subtomos" and meta["n_cubes"] == 30
    assert meta["mask_fraction"] == pytest.approx(mask.mean())
    assert sorted(p.name for p in out.iterdir()) == [f"{NAME}.json", f"{NAME}.tsv", f"{NAME}.zarr"]


def test_same_seed_same_cubes_different_seed_different(tmp_path, tomo_and_mask):
    tomo, _, mask_path, _ = tomo_and_mask
    _, a, _, ta, _ = _extract(tmp_path, tomo, mask_path, tag="a", cube_size_px=16, n_subtomos=20)
    _, b, _, tb, _ = _extract(tmp_path, tomo, mask_path, tag="b", cube_size_px=16, n_subtomos=20)
    _, c, _, tc, _ = _extract(tmp_path, tomo, mask_path, tag="c", cube_size_px=16, n_subtomos=20, row=_row(seed=1))
    np.testing.assert_array_equal(a, b)
    assert ta.equals(tb)
    assert not np.array_equal(ta[["z", "y", "x"]], tc[["z", "y", "x"]]) and not np.array_equal(a, c)


def test_grid_sampling_through_the_stage(tmp_path, tomo_and_mask):
    tomo, volume, mask_path, mask = tomo_and_mask
    _, cubes, _, table, _ = _extract(tmp_path, tomo, mask_path, cube_size_px=16, sampling="grid",
                                     grid_stride_px=8, min_mask_fraction=0.2)
    centres = table[["z", "y", "x"]].to_numpy()
    assert len(centres) > 5 and np.all((centres - 8) % 8 == 0)
    for i, centre in enumerate(centres):
        np.testing.assert_array_equal(cubes[i], _crop(volume, tuple(centre), 16))
        assert _brute_fraction(mask, tuple(centre), 16) >= 0.2


def test_enlarged_64_cubes_are_stored_at_92(tmp_path):
    tomo, volume = _tomogram(tmp_path, shape=(96, 100, 98))
    mask_path = _mask(tmp_path, np.ones(volume.shape))
    _, cubes, attrs, table, _ = _extract(tmp_path, tomo, mask_path, cube_size_px=64, n_subtomos=3,
                                         enlarge_for_rotation=True)
    assert cubes.shape == (3, 92, 92, 92) and attrs["cube_size_px"] == 92
    for i, row in table.iterrows():
        np.testing.assert_array_equal(cubes[i], _crop(volume, (row.z, row.y, row.x), 92))


def test_fewer_candidates_than_requested_takes_all_and_says_so(tmp_path, caplog):
    tomo, volume = _tomogram(tmp_path)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[18:22, 30:33, 30:32] = True
    with caplog.at_level(logging.WARNING, logger="cryo_pipeline"):
        summary, cubes, *_ = _extract(tmp_path, tomo, _mask(tmp_path, mask), cube_size_px=8, n_subtomos=500,
                                      min_mask_fraction=0.0)
    assert summary["took_all"] and summary["n_cubes"] == 24 == len(cubes)
    assert f"only 24 cubes of 8³ in {NAME} reach min_mask_fraction=0 (500 requested)" in caplog.text


def _assert_nothing_written(tmp_path):
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_empty_mask_fails_before_writing(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    with pytest.raises(ValueError) as err:
        _extract(tmp_path, tomo, _mask(tmp_path, np.zeros(volume.shape)), cube_size_px=16)
    assert str(err.value) == (f"mask of {NAME} is empty (0 % of voxels); lower mask.density_percentage/"
                              "std_percentage or check the tomogram's contrast (mask.density_contrast)")
    _assert_nothing_written(tmp_path)


def test_thin_tomogram_fails_before_writing(tmp_path):
    tomo, volume = _tomogram(tmp_path, shape=(20, 72, 68))
    with pytest.raises(ValueError) as err:
        _extract(tmp_path, tomo, _mask(tmp_path, np.ones(volume.shape)), cube_size_px=16, enlarge_for_rotation=True)
    assert str(err.value) == (f"tomogram {NAME} is (20, 72, 68) voxels but the stored cube is 24; "
                              "lower extract.cube_size_px or bin less")
    _assert_nothing_written(tmp_path)


def test_no_cube_reaching_the_fraction_fails_before_writing(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[10:14, 10:14, 10:14] = True  # 64 of 4096 voxels of a 16³ cube: 0.016
    with pytest.raises(ValueError) as err:
        _extract(tmp_path, tomo, _mask(tmp_path, mask), cube_size_px=16)
    assert str(err.value) == (f"no cube of 16³ voxels in {NAME} reaches min_mask_fraction=0.3: the best has 0.016 "
                              "(mask covers 0.0327 %); lower extract.min_mask_fraction or enlarge the mask")
    assert "\n" not in str(err.value)
    _assert_nothing_written(tmp_path)


def test_mask_of_another_shape_fails_before_writing(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    with pytest.raises(ValueError, match=rf"mask .* of {NAME} is \(40, 72, 60\) voxels but the tomogram .* is "
                                         r"\(40, 72, 68\); re-run make_mask"):
        _extract(tmp_path, tomo, _mask(tmp_path, np.ones((40, 72, 60))), cube_size_px=16)
    _assert_nothing_written(tmp_path)


# --- the real tomogram ------------------------------------------------------------------------
@pytest.mark.skipif(not MICROTUBULE.is_file(), reason=f"{MICROTUBULE} not available")
def test_real_microtubule_tomogram_end_to_end(tmp_path, caplog):
    row = DatasetRow.model_validate({"dataset": "mt13pf_10.52Apx", "kind": "tomogram", "source": str(MICROTUBULE),
                                     "tilt_min_deg": -60.0, "tilt_max_deg": 60.0, "seed": 3})
    mask_path = tmp_path / "mask" / "mt13pf_10.52Apx.mrc"
    with caplog.at_level(logging.INFO, logger="cryo_pipeline"):
        fraction = make_mask.run(tomogram_path=MICROTUBULE, dataset=row, cfg=MaskConfig(), out=mask_path)
        summary = extract_subtomos.run(tomogram_path=MICROTUBULE, mask_path=mask_path, dataset=row,
                                       cfg=ExtractConfig(cube_size_px=32, n_subtomos=50),
                                       out_store=tmp_path / "sub" / "mt13pf_10.52Apx.zarr",
                                       out_table=tmp_path / "sub" / "mt13pf_10.52Apx.tsv")
    volume = read_mrc(MICROTUBULE).data
    mask = read_mrc(mask_path).data != 0
    assert 0.1 < fraction < 0.6
    assert f"mask of mt13pf_10.52Apx: {100 * fraction:.1f} % of voxels" in caplog.text
    assert read_stage_meta(meta_path_for(mask_path))["mask_fraction"] == pytest.approx(fraction)
    assert read_stage_meta(meta_path_for(mask_path))["density_contrast"] == "bright"  # contrast-inverted data
    assert "extract mt13pf_10.52Apx: 50 cubes of 32³" in caplog.text
    array, attrs = open_subtomo_store(tmp_path / "sub" / "mt13pf_10.52Apx.zarr")
    table = read_subtomo_table(tmp_path / "sub" / "mt13pf_10.52Apx.tsv")
    assert array.shape == (50, 32, 32, 32) and len(table) == 50 == summary["n_cubes"]
    assert attrs["voxel_size_angstrom"] == pytest.approx(10.52, abs=1e-5)
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"], attrs["cube_size_px"]) == (-60.0, 60.0, 32)
    assert attrs["normalization"]["mean"] == pytest.approx(volume.mean(dtype=np.float64))
    assert set(table["z"]) <= set(range(16, 21))  # 36 thick: z centres 16..20 only
    cubes = array[...]
    for i, row_ in table.iterrows():
        centre = (row_.z, row_.y, row_.x)
        np.testing.assert_array_equal(cubes[i], _crop(volume, centre, 32))
        assert _brute_fraction(mask, centre, 32) >= 0.3
    meta = read_stage_meta(meta_path_for(tmp_path / "sub" / "mt13pf_10.52Apx.zarr"))
    assert meta["mask_fraction"] == pytest.approx(fraction) and meta["n_train"] + meta["n_val"] == 50


def test_non_finite_tomogram_fails_before_writing(tmp_path):
    tomo, volume = _tomogram(tmp_path)
    mask_path = _mask(tmp_path, np.ones(volume.shape))
    data = np.memmap(tomo, dtype=np.float32, mode="r+", offset=1024, shape=volume.shape)
    data[5, 6, 7] = np.nan
    data.flush()
    del data
    with pytest.raises(ValueError, match=rf"tomogram {NAME} \(.*\) holds NaN or Inf voxels"):
        _extract(tmp_path, tomo, mask_path, cube_size_px=16)
    _assert_nothing_written(tmp_path)
