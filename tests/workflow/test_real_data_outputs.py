"""A tiny run of every method: volume.ome.zarr beside every volume.mrc (NGFF-valid, level 0 equal to the MRC,
scale = its voxel size, opened by the ome-zarr reader), a raw tilt series with its axis along x aligned by the
align_tilt_series rule, the RELION-5 tomograms.star of each correcting method, and the portal rows' jobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.ome_zarr import read_ome_zarr, validate_ome_zarr
from cryo_pipeline.io.relion_star import read_star_loop

from .conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow

HEADER = ("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
          "\tmethods\tseed\tshape_px\tangles\ttilt_axis_deg\tdata_kind")
ROWS = [
    "sphere_fourier\tsynthetic\thollow_sphere\t8.0\t-60\t60\t2\tfourier\t\tisonet,cryogen\t0\t32\t\t\t",
    "shapes.ts\tsynthetic\tmixed_shapes\t8.0\t-50\t65\t3\ttiltseries\t20\twbp,cn\t1\t24x32x32\t\t\t",
    "axis_x\ttiltseries\traw.mrc\t10.0\t-60\t60\t\t\t\twbp\t0\t\traw.tlt\t90\t",
]
SHRINK = {  # each job takes seconds
    "extract": {"cube_size_px": 16, "n_subtomos": 6, "min_mask_fraction": 0.0},
    "train": {"crop_px": 16, "base_channels": 4, "depth": 2, "disc_channels": 4, "batch_size": 1, "epochs": 2,
              "steps_per_epoch": 3},
    "predict": {"tile_px": 32, "overlap_px": 8, "batch_size": 2},
    "cn": {"width": 16, "n_hidden_layers": 1, "slab_px": 12, "halo_px": 2, "seed_iterations": 5,
           "slab_iterations": 5},
    "evaluate": {"windowed_ssim": False},
}


def _raw_series(folder: Path) -> np.ndarray:
    """A blob tilt series with its tilt axis along x (+90 deg), written as raw.mrc/raw.tlt."""
    from cryo_pipeline.ops.blob_projections import blob_tilt_series, random_blobs
    from cryo_pipeline.ops.image_alignment import rotation_matrix_xy

    angles = np.arange(-60.0, 61.0, 4.0)
    turn = np.repeat(rotation_matrix_xy(90.0)[None], angles.size, 0)
    raw = blob_tilt_series(random_blobs(8, radius_px=10, sigma_range_px=(1.3, 2.2), seed=1), angles,
                           image_shape_yx=(32, 40), matrices_xy=turn)
    write_mrc(folder / "raw.mrc", raw, voxel_size_angstrom=10.0)
    (folder / "raw.tlt").write_text("".join(f"{a:.2f}\n" for a in angles))
    return raw


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("real_data_outputs")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = "tiny"
    for section, values in SHRINK.items():
        config[section].update(values)
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "config" / "datasets.tsv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    _raw_series(workdir / "config")
    done = run_snakemake(workdir, "--cores", "2", timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir / "results" / "tiny"


@pytest.mark.slow
def test_every_method_writes_a_valid_ome_zarr_equal_to_its_mrc(finished):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    volumes = sorted(finished.glob("*/*/volume.mrc"))
    methods = {(p.parent.parent.name, p.parent.name) for p in volumes}
    assert {("sphere_fourier", "isonet"), ("sphere_fourier", "cryogen"), ("shapes.ts", "wbp"), ("shapes.ts", "cn"),
            ("axis_x", "wbp")} <= methods
    for mrc_path in volumes:
        store = mrc_path.with_suffix(".ome.zarr")
        validate_ome_zarr(store)  # the NGFF 0.5 models (ome-zarr-models)
        mrc = read_mrc(mrc_path)
        level0, scale = read_ome_zarr(store)
        np.testing.assert_array_equal(level0, mrc.data, err_msg=str(store))
        assert scale == pytest.approx((mrc.voxel_size_angstrom,) * 3)
        image = list(Reader(parse_url(str(store)))())[0]
        np.testing.assert_array_equal(np.asarray(image.data[0]), mrc.data)


@pytest.mark.slow
def test_a_raw_series_with_its_axis_along_x_is_aligned_before_wbp(finished):
    aligned = read_mrc(finished / "axis_x" / "aligned" / "tilt_series.mrc")
    raw = read_mrc(finished.parent.parent / "config" / "raw.mrc").data
    np.testing.assert_array_equal(aligned.data, raw.transpose(0, 2, 1)[:, ::-1, :])  # the exact quarter turn
    assert read_mrc(finished / "axis_x" / "wbp" / "volume.mrc").data.shape[1:] == (40, 32)


@pytest.mark.slow
def test_relion_tomograms_star_lists_each_correcting_methods_tomograms(finished):
    for method, names in (("isonet", ["sphere_fourier"]), ("cryogen", ["sphere_fourier"]), ("cn", ["shapes.ts"])):
        rows = read_star_loop(finished / "relion" / f"tomograms_{method}.star")
        assert [r["rlnTomoName"] for r in rows] == names
        volume = read_mrc(rows[0]["rlnTomoReconstructedTomogram"] if Path(rows[0]["rlnTomoReconstructedTomogram"])
                          .is_absolute() else finished.parent.parent / rows[0]["rlnTomoReconstructedTomogram"])
        assert int(rows[0]["rlnTomoSizeZ"]) == round(volume.data.shape[0] * float(rows[0]["rlnTomoTomogramBinning"]))
    assert not (finished / "relion" / "tomograms_wbp.star").exists()


def test_portal_rows_are_fetched_by_id_then_aligned(tiny_workdir):
    sheet = tiny_workdir / "config" / "datasets.tsv"
    sheet.write_text("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\t"
                     "corruption\tsnr\tmethods\tdata_kind\n"
                     "ts026\tportal\trun:333\t\t-60\t60\t\t\t\twbp\ttiltseries\n"
                     "tomo771\tportal\ttomogram:771\t\t-60\t60\t\t\t\tisonet\ttomogram\n")
    result = run_snakemake(tiny_workdir, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "fetch-portal --dataset-json" in out and '"source":"run:333"' in out
    assert "rule fetch_portal_tiltseries" in out and "rule fetch_portal_tomogram" in out
    assert "--tilt-series resources/ts026/tilt_series.mrc --angles=resources/ts026/angles.tlt" in out
    assert "--alignment=resources/ts026/alignment.json" in out
    assert "results/tiny/relion/tomograms_isonet.star" in out
