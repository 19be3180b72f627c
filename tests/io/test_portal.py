"""CryoET Data Portal: resolution through the official client on recorded responses, and the download of the
resolved files from a local server with the portal's file layout (127.0.0.1, never the network)."""

import json
from pathlib import Path

import numpy as np
import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.io.angles import read_tilt_angles
from cryo_pipeline.io.fetch import fetch_url
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.portal import alignment_from_portal_json, parse_portal_source, resolve_portal_source
from cryo_pipeline.io.portal_recording import ReplayPortalClient, request_key
from cryo_pipeline.ops.blob_projections import blob_tilt_series, random_blobs
from cryo_pipeline.ops.fsc import fourier_shell_correlation
from cryo_pipeline.ops.image_alignment import align_stack, rotation_matrix_xy
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

RECORDING = Path(__file__).parent / "data" / "portal_recording.json"
FILES_HOST = "https://files.cryoetdataportal.cziscience.com"


@pytest.fixture
def client():
    return ReplayPortalClient(RECORDING)


def test_a_run_resolves_to_its_raw_tilt_series_angles_and_standard_alignment(client):
    found = resolve_portal_source("run:333", data_kind="tiltseries", client=client)
    assert [f.role for f in found.files] == ["source", "angles", "alignment"]
    assert found.file("source").url == f"{FILES_HOST}/10004/TS_026/TiltSeries/100/TS_026.mrc"
    assert found.file("alignment").url.endswith("/10004/TS_026/Alignments/100/alignment_metadata.json")
    assert (found.voxel_size_angstrom, found.tilt_axis_deg, found.voltage_kv) == (13.48, 84.3, 300.0)
    assert found.entity_ids == {"run": 333, "tiltseries": 120, "alignment": 456}
    assert resolve_portal_source("tiltseries:120", data_kind="tiltseries", client=client).files == found.files


def test_a_tomogram_id_and_its_run_resolve_to_the_same_mrc(client):
    by_id = resolve_portal_source("tomogram:771", data_kind="tomogram", client=client)
    by_run = resolve_portal_source("run:333", data_kind="tomogram", client=client)
    assert by_id.files == by_run.files and by_id.voxel_size_angstrom == 13.48
    assert by_id.file("source").url.endswith("/Reconstructions/VoxelSpacing13.480/Tomograms/100/TS_026.mrc")


@pytest.mark.parametrize(("source", "kind", "match"), [
    ("run:999999", "tiltseries", r"CryoET Data Portal has no run with id 999999 \(source 'run:999999'\)"),
    ("tomogram:999999", "tomogram", r"has no tomogram with id 999999"),
    ("run 333", "tiltseries", r"must be run:<id>, tiltseries:<id> or tomogram:<id>"),
    ("tomogram:771", "tiltseries", r"is a tomogram; use run:<id> or tiltseries:<id>"),
    ("run:333", "movie", r"data_kind must be tiltseries or tomogram"),
])
def test_bad_portal_sources_are_one_clear_line(client, source, kind, match):
    with pytest.raises(ValueError, match=match) as err:
        resolve_portal_source(source, data_kind=kind, client=client)
    assert "\n" not in str(err.value)


def test_a_request_missing_from_the_recording_is_named(client):
    with pytest.raises(ValueError, match=r"no recorded portal response for runs\(where: \{ id: \{ _eq: 5 \} \}\)"):
        resolve_portal_source("run:5", data_kind="tiltseries", client=client)


def test_the_recording_keys_are_what_the_client_sends():
    import cryoet_data_portal as cdp

    request = cdp.Client().build_query(cdp.Run, "runs", "Run", {"id": {"_eq": 333}})
    assert request_key(request) in json.loads(RECORDING.read_text())["responses"]
    assert parse_portal_source(" Tomogram : 771 ") == ("tomogram", 771)


def _portal_files(rng):
    """A raw (misaligned) blob series in the portal's layout, its .rawtlt and alignment_metadata.json."""
    angles = np.arange(-60.0, 61.0, 3.0)
    blobs = random_blobs(12, radius_px=13, sigma_range_px=(1.3, 2.5), seed=9)
    rotation = 84.3 + rng.uniform(-0.5, 0.5, angles.size)
    shifts = rng.uniform(-5.0, 5.0, (angles.size, 2))
    raw = blob_tilt_series(blobs, angles, image_shape_yx=(40, 40),
                           matrices_xy=np.array([rotation_matrix_xy(r) for r in rotation]), shifts_xy_px=shifts)
    sections = [{"z_index": k, "tilt_angle": float(a), "volume_x_rotation": 0.0,
                 "in_plane_rotation": rotation_matrix_xy(r).tolist(), "x_offset": float(s[0]), "y_offset": float(s[1])}
                for k, (a, r, s) in enumerate(zip(angles, rotation, shifts, strict=True))]
    metadata = {"alignment_type": "GLOBAL", "format": "IMOD", "is_portal_standard": True,
                "per_section_alignment_parameters": sections[::-1]}  # order in the file must not matter
    reference = weighted_backprojection_3d(blob_tilt_series(blobs, angles, image_shape_yx=(40, 40)), angles,
                                           volume_shape_zyx=(28, 40, 40))
    return raw, angles, metadata, reference


def test_resolved_files_download_from_a_local_portal_layout_and_reconstruct(client, http_mirror, tmp_path):
    raw, angles, metadata, reference = _portal_files(np.random.default_rng(2))
    write_mrc(tmp_path / "raw.mrc", raw, voxel_size_angstrom=13.48)
    layout = {"/10004/TS_026/TiltSeries/100/TS_026.mrc": (tmp_path / "raw.mrc").read_bytes(),
              "/10004/TS_026/TiltSeries/100/TS_026.rawtlt": "".join(f"{a:.2f}\n" for a in angles).encode(),
              "/10004/TS_026/Alignments/100/alignment_metadata.json": json.dumps(metadata).encode()}
    http_mirror.files.update(layout)
    http_mirror.drop_after["/10004/TS_026/TiltSeries/100/TS_026.mrc"] = [100_000]  # one dropped connection
    replay = ReplayPortalClient(RECORDING, rewrite={FILES_HOST: http_mirror.url("")})
    found = resolve_portal_source("run:333", data_kind="tiltseries", client=replay)
    local = {}
    for item in found.files:
        local[item.role] = tmp_path / "resources" / Path(item.url).name
        result = fetch_url(item.url, local[item.role], size_bytes=item.size_bytes, backoff_s=0.0, progress=False)
        assert result.path.read_bytes() == layout[item.url.removeprefix(http_mirror.url(""))]
    assert any(h.get("Range") for p, h in http_mirror.requests if p.endswith(".mrc"))  # resumed, not restarted
    stack = read_mrc(local["source"]).data
    alignment = alignment_from_portal_json(local["alignment"], n_images=stack.shape[0], images_path=local["source"])
    np.testing.assert_allclose(alignment.tilt_angles_deg, read_tilt_angles(local["angles"]), atol=0.006)
    volume = weighted_backprojection_3d(align_stack(stack, alignment), alignment.tilt_angles_deg,
                                        volume_shape_zyx=(28, *alignment.aligned_shape_yx(stack.shape[1:])))
    dy, dx = ((n - 40) // 2 for n in volume.shape[1:])
    _, fsc = fourier_shell_correlation(volume[:, dy:dy + 40, dx:dx + 40], reference)
    assert fsc[1:28 // 4 + 1].min() > 0.95


def test_a_nonzero_x_rotation_in_the_portal_alignment_is_rejected(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"per_section_alignment_parameters": [
        {"z_index": 0, "tilt_angle": 0.0, "volume_x_rotation": 2.0, "in_plane_rotation": [[1, 0], [0, 1]],
         "x_offset": 0.0, "y_offset": 0.0}]}))
    with pytest.raises(ValueError, match=r"a\.json: per_section_alignment_parameters\[0\] \(z_index 0\): "
                                         r"volume_x_rotation 2\.0 deg is not supported yet"):
        alignment_from_portal_json(tmp_path / "a.json", n_images=1, images_path="ts.mrc")


def test_stage_fetch_portal_downloads_to_fixed_names_with_a_record(http_mirror, tmp_path):
    from cryo_pipeline.stages import fetch_portal

    raw, angles, metadata, _ = _portal_files(np.random.default_rng(4))
    write_mrc(tmp_path / "raw.mrc", raw, voxel_size_angstrom=13.48)
    http_mirror.files.update({
        "/10004/TS_026/TiltSeries/100/TS_026.mrc": (tmp_path / "raw.mrc").read_bytes(),
        "/10004/TS_026/TiltSeries/100/TS_026.rawtlt": "".join(f"{a:.2f}\n" for a in angles).encode(),
        "/10004/TS_026/Alignments/100/alignment_metadata.json": json.dumps(metadata).encode()})
    replay = ReplayPortalClient(RECORDING, rewrite={FILES_HOST: http_mirror.url("")})
    folder = tmp_path / "resources" / "ts026"
    row = DatasetRow(dataset="ts026", kind="portal", source="run:333", data_kind="tiltseries", tilt_min_deg=-60,
                     tilt_max_deg=60, methods=("wbp",))
    assert {role: Path(p).name for role, p in row.portal_files().items()} == {
        "source": "tilt_series.mrc", "angles": "angles.tlt", "alignment": "alignment.json"}
    paths = fetch_portal.run(dataset=row, folder=folder, client=replay, progress=False)
    assert {role: p.name for role, p in paths.items()} == {
        "source": "tilt_series.mrc", "angles": "angles.tlt", "alignment": "alignment.json"}
    assert paths["source"].read_bytes() == (tmp_path / "raw.mrc").read_bytes()
    record = json.loads((folder / "portal.json").read_text())
    assert record["portal"]["entity_ids"] == {"run": 333, "tiltseries": 120, "alignment": 456}
    assert [d["role"] for d in record["downloads"]] == ["source", "angles", "alignment"]
    with pytest.raises(ValueError, match=r"dataset gone: CryoET Data Portal has no run with id 999999"):
        fetch_portal.run(dataset=row.model_copy(update={"dataset": "gone", "source": "run:999999"}),
                         folder=tmp_path / "x", client=replay, progress=False)
    assert not (tmp_path / "x").exists()
