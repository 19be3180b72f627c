"""RELION-5 tomograms.star: RELION's column layout, unbinned sizes, no made-up CTF values."""

import logging

import pytest

from cryo_pipeline.io.relion_star import RelionTomogram, read_star_loop, write_tomograms_star


def _tomo(name, **kw):
    base = dict(name=name, tomogram_path=f"results/demo/{name}/cryogen/volume.mrc", shape_zyx=(32, 64, 48),
                voxel_size_angstrom=20.0, tilt_series_pixel_size_angstrom=10.0)
    return RelionTomogram(**{**base, **kw})


def test_tomograms_star_has_relion5_columns_and_unbinned_sizes(tmp_path):
    star = tmp_path / "tomograms.star"
    columns = write_tomograms_star(star, [_tomo("a", voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
                                                tilt_series_star="a_ts.star"),
                                          _tomo("b", voltage_kv=200.0, cs_mm=2.7, amplitude_contrast=0.1,
                                                tilt_series_star="b_ts.star")])
    text = star.read_text()
    assert text.startswith("# version 50001\n\ndata_global\n\nloop_\n_rlnTomoName #1\n")
    assert columns == ["rlnTomoName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
                       "rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnOpticsGroupName", "rlnTomoTiltSeriesPixelSize",
                       "rlnTomoTiltSeriesStarFile", "rlnTomoTomogramBinning", "rlnTomoSizeX", "rlnTomoSizeY",
                       "rlnTomoSizeZ", "rlnTomoReconstructedTomogram"]
    rows = read_star_loop(star)
    assert rows[1]["rlnTomoName"] == "b" and float(rows[1]["rlnVoltage"]) == 200.0
    assert float(rows[0]["rlnTomoTomogramBinning"]) == 2.0
    assert (rows[0]["rlnTomoSizeX"], rows[0]["rlnTomoSizeY"], rows[0]["rlnTomoSizeZ"]) == ("96", "128", "64")
    assert rows[0]["rlnTomoReconstructedTomogram"] == "results/demo/a/cryogen/volume.mrc"


def test_unknown_ctf_is_left_out_and_named_never_invented(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        columns = write_tomograms_star(tmp_path / "t.star", [_tomo("a", voltage_kv=300.0, cs_mm=2.7,
                                                                   amplitude_contrast=0.07), _tomo("b")])
    assert "rlnVoltage" not in columns and "rlnTomoTiltSeriesStarFile" not in columns
    assert "rlnVoltage" in caplog.text and "no value for b" in caplog.text
    assert set(read_star_loop(tmp_path / "t.star")[0]) == set(columns)


@pytest.mark.parametrize(("tomograms", "match"), [
    ([], "no tomograms"),
    ([_tomo("a"), _tomo("a")], r"names repeat: \['a'\]"),
    ([_tomo("a", tomogram_path="has space.mrc")], "white space"),
])
def test_bad_rows_are_one_clear_error(tmp_path, tomograms, match):
    with pytest.raises(ValueError, match=match):
        write_tomograms_star(tmp_path / "t.star", tomograms)
    assert not (tmp_path / "t.star").exists()


def test_stage_export_relion_reads_sizes_from_the_volumes_and_ctf_from_the_sheet(tmp_path):
    import numpy as np

    from cryo_pipeline.config.dataset import DatasetRow
    from cryo_pipeline.io.mrc import write_mrc
    from cryo_pipeline.stages import export_relion

    write_mrc(tmp_path / "a.mrc", np.zeros((16, 24, 32), np.float32), voxel_size_angstrom=21.04)
    row = DatasetRow(dataset="tomo_a", kind="tomogram", source="a.mrc", voxel_size_angstrom=10.52,
                     tilt_min_deg=-60, tilt_max_deg=60, voltage_kv=300, cs_mm=2.7, defocus_angstrom=30000)
    export_relion.run(datasets=[row], volumes=[tmp_path / "a.mrc"], out=tmp_path / "tomograms.star")
    (entry,) = read_star_loop(tmp_path / "tomograms.star")
    assert entry["rlnTomoName"] == "tomo_a" and float(entry["rlnTomoTomogramBinning"]) == 2.0
    assert (entry["rlnTomoSizeX"], entry["rlnTomoSizeY"], entry["rlnTomoSizeZ"]) == ("64", "48", "32")
    assert float(entry["rlnVoltage"]) == 300.0 and float(entry["rlnAmplitudeContrast"]) == 0.07
