"""Stage deconvolve_tomogram: whole vs chunked through files, geometry kept, clean failures."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import scipy.ndimage as ndi

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import DeconvolveConfig
from cryo_pipeline.io.mrc import read_mrc, read_mrc_header, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for
from cryo_pipeline.ops.blending import tile_origins_3d
from cryo_pipeline.stages import deconvolve_tomogram

CTF = {"voltage_kv": 300.0, "cs_mm": 2.7, "defocus_angstrom": 30000.0}


def _row(source, **values) -> DatasetRow:
    base = {"dataset": "tomo1", "kind": "tomogram", "source": str(source), "tilt_min_deg": -60.0,
            "tilt_max_deg": 60.0, **CTF}
    return DatasetRow.model_validate({**base, **values})


@pytest.fixture
def tomogram(tmp_path):
    rng = np.random.default_rng(5)
    shape = (40, 72, 88)
    volume = ndi.gaussian_filter(rng.standard_normal(shape), 1.5, mode="wrap") + 0.3 * rng.standard_normal(shape)
    path = tmp_path / "in" / "tomo1.mrc"
    write_mrc(path, (volume * 10 + 100).astype(np.float32), voxel_size_angstrom=10.0, origin_angstrom=(1.0, 2.0, 3.0))
    return path


def test_whole_and_chunked_agree_and_keep_the_geometry(tmp_path, tomogram):
    out_dir = tmp_path / "out"
    whole_out, chunked_out = out_dir / "whole.mrc", out_dir / "chunked.mrc"
    row = _row(tomogram)
    deconvolve_tomogram.run(tomogram_path=tomogram, dataset=row, cfg=DeconvolveConfig(), out=whole_out)
    cfg = DeconvolveConfig(chunk_size_px=32, chunk_overlap_px=8, chunk_halo_px=24)
    deconvolve_tomogram.run(tomogram_path=tomogram, dataset=row, cfg=cfg, out=chunked_out)

    source = read_mrc(tomogram)
    whole, chunked = read_mrc(whole_out), read_mrc(chunked_out)
    for result in (whole, chunked):
        assert result.data.shape == source.data.shape
        assert result.voxel_size_angstrom == pytest.approx(10.0)
        assert result.origin_angstrom == (1.0, 2.0, 3.0)
        assert result.data.mean(dtype=np.float64) == pytest.approx(source.data.mean(dtype=np.float64), rel=1e-5)
        assert result.data.std(dtype=np.float64) == pytest.approx(source.data.std(dtype=np.float64), rel=1e-4)
    rms = np.sqrt(np.mean((chunked.data.astype(np.float64) - whole.data) ** 2)) / whole.data.std()
    assert rms < 1e-3
    assert np.abs(whole.data - source.data).mean() > 0.1 * source.data.std()  # it filtered something

    assert sorted(p.name for p in out_dir.iterdir()) == ["chunked.json", "chunked.mrc", "whole.json", "whole.mrc"]
    assert sorted(p.name for p in tomogram.parent.iterdir()) == ["tomo1.mrc"]
    with mrcfile.open(chunked_out) as mrc:  # header statistics written by the memory-mapped writer
        assert float(mrc.header.dmean) == pytest.approx(float(chunked.data.mean()), rel=1e-5)
        assert float(mrc.header.dmax) == pytest.approx(float(chunked.data.max()))
    meta = json.loads(meta_path_for(chunked_out).read_text())
    assert meta["stage"] == "deconvolve_tomogram" and meta["mode"] == "chunked" and meta["runtime_s"] > 0
    assert meta["n_chunks"] == len(tile_origins_3d(source.data.shape, tile_zyx=32, overlap_zyx=8))
    assert meta["filter"] == {"n_points": 2048, "pixel_size_angstrom": 10.0, "snr_falloff": 1.0,
                              "deconv_strength": 1.0, "highpass_nyquist": 0.02, **CTF, "amplitude_contrast": 0.07,
                              "phase_shift_deg": 0.0, "phase_flipped": False}
    assert json.loads(meta_path_for(whole_out).read_text())["mode"] == "whole"


def test_the_header_voxel_size_wins_over_the_sheet(tmp_path, tomogram):
    # After bin_tomogram the header holds the binned voxel size; the sheet still has the original.
    out = tmp_path / "out" / "d.mrc"
    deconvolve_tomogram.run(tomogram_path=tomogram, dataset=_row(tomogram, voxel_size_angstrom=5.0),
                            cfg=DeconvolveConfig(), out=out)
    assert read_mrc_header(out)["voxel_size_angstrom"] == pytest.approx(10.0)
    assert json.loads(meta_path_for(out).read_text())["filter"]["pixel_size_angstrom"] == pytest.approx(10.0)


def test_a_header_without_voxel_size_takes_the_sheets(tmp_path, tomogram):
    with mrcfile.open(tomogram, mode="r+") as mrc:
        mrc.voxel_size = 0.0
    out = tmp_path / "out" / "d.mrc"
    cfg = DeconvolveConfig(chunk_size_px=40, chunk_overlap_px=8, chunk_halo_px=8)
    deconvolve_tomogram.run(tomogram_path=tomogram, dataset=_row(tomogram, voxel_size_angstrom=7.5), cfg=cfg, out=out)
    assert read_mrc_header(out)["voxel_size_angstrom"] == pytest.approx(7.5)
    with pytest.raises(ValueError, match=r"has no voxel size"):
        deconvolve_tomogram.run(tomogram_path=tomogram, dataset=_row(tomogram), cfg=cfg, out=tmp_path / "x.mrc")


def test_without_defocus_it_fails_naming_the_dataset_and_column(tmp_path, tomogram):
    row = _row(tomogram, defocus_angstrom=None)
    out = tmp_path / "out" / "d.mrc"
    with pytest.raises(ValueError, match=r"dataset tomo1: column defocus_angstrom is empty"):
        deconvolve_tomogram.run(tomogram_path=tomogram, dataset=row, cfg=DeconvolveConfig(), out=out)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_failure_mid_way_leaves_no_output_and_no_temp_file(tmp_path, tomogram, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(deconvolve_tomogram, "deconvolve_chunked", boom)
    out = tmp_path / "out" / "d.mrc"
    cfg = DeconvolveConfig(chunk_size_px=32)
    with pytest.raises(RuntimeError, match="simulated failure"):
        deconvolve_tomogram.run(tomogram_path=tomogram, dataset=_row(tomogram), cfg=cfg, out=out)
    assert list(out.parent.iterdir()) == []
