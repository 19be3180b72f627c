"""Tests of the report stage, its figures and HTML rendering, on a tiny fake run."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryo_pipeline.ops.wedge import apply_missing_wedge_3d, missing_wedge_mask_3d
from cryo_pipeline.report import figures
from cryo_pipeline.report.html import MISSING, format_value
from cryo_pipeline.report.metrics_table import NUMERIC_COLUMNS, TEXT_COLUMNS
from cryo_pipeline.stages import report as report_stage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
N = 24
VOXEL = 10.0
TILT = (-60.0, 60.0)


def _sphere(n: int = N, radius: float = 7.0) -> np.ndarray:
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    return (np.sqrt(z**2 + y**2 + x**2) <= radius).astype(np.float32)


def _write(path: Path, data: np.ndarray) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = VOXEL
    return path


def _row(dataset: str, method: str, volume: Path | str, **kw) -> dict:
    row = {c: "" for c in (*TEXT_COLUMNS, *NUMERIC_COLUMNS)}
    row.update(dataset=dataset, method=method, volume_path=str(volume), voxel_size_angstrom=VOXEL,
               tilt_min_deg=TILT[0], tilt_max_deg=TILT[1], device="cpu", runtime_s=1.5)
    row.update(kw)
    return row


@pytest.fixture
def fake_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as working directory holding results/demo/metrics.tsv and its inputs."""
    monkeypatch.chdir(tmp_path)
    run_dir = Path("results/demo")  # relative paths, as the workflow writes them
    run_dir.mkdir(parents=True)
    gt = _sphere()
    corrupted = apply_missing_wedge_3d(gt, tilt_min_deg=TILT[0], tilt_max_deg=TILT[1])
    wbp = 2.0 * corrupted + 0.5  # another intensity scale: the fit (a = 0.5, b = -0.25) undoes it
    _write(run_dir / "gt.mrc", gt)
    _write(run_dir / "corrupted.mrc", corrupted)
    _write(run_dir / "wbp.mrc", wbp)
    freq = np.linspace(0, 1 / (2 * VOXEL), 13)
    curve = {"frequency_per_angstrom": freq.tolist(), "fsc_curve": np.exp(-freq * 200).tolist(),
             "fsc_measured_curve": np.exp(-freq * 100).tolist(),
             "fsc_missing_curve": np.exp(-freq * 400).tolist()}
    (run_dir / "curves_corrupted.json").write_text(json.dumps(curve))
    (run_dir / "curves_wbp.json").write_text(json.dumps(curve))
    tomo = (tmp_path / "tomo.mrc").resolve()  # an absolute path
    _write(tomo, np.random.default_rng(0).normal(size=(N, N, N)))
    rows = [
        _row("sphere", "wbp", run_dir / "wbp.mrc", kind="synthetic", corruption="fourier",
             ground_truth_path=run_dir / "gt.mrc", curves_path=run_dir / "curves_wbp.json",
             psnr_db=18.25, psnr_paper_db=21.3, ssim=0.8123, ssim_global=0.8071, fit_a=0.5,
             fit_b=-0.25, fsc_resolution_angstrom=42.0, dfsc_missing_mean=0.2, wedge_fill=0.1),
        _row("sphere", "corrupted", run_dir / "corrupted.mrc", kind="synthetic",
             corruption="fourier", ground_truth_path=run_dir / "gt.mrc",
             curves_path=run_dir / "curves_corrupted.json", psnr_db=18.0, psnr_paper_db=21.1,
             ssim=0.81, ssim_global=0.8, fit_a=1.0, fit_b=0.0, wedge_fill=0.0),
        _row("real_tomo", "wbp", tomo, kind="tomogram", corruption="empty", psnr_db="nan",
             wedge_fill=0.05),
        _row("real_tomo", "cryogen", tomo, kind="tomogram", corruption="empty", wedge_fill=0.7),
    ]
    pd.DataFrame(rows).to_csv(run_dir / "metrics.tsv", sep="\t", index=False)
    return run_dir / "metrics.tsv"


class _Walker(HTMLParser):
    """Collects tags and attributes, checks that elements nest and close properly."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _walk(html: str) -> _Walker:
    walker = _Walker()
    walker.feed(html)
    walker.close()
    assert walker.errors == [] and walker.stack == []
    return walker


def _summary_cells(html: str) -> tuple[list[str], list[list[str]]]:
    summary = re.search(r'<table class="summary">(.*?)</table>', html, re.S).group(1)
    header = re.findall(r"<th[^>]*>(.*?)</th>", summary, re.S)
    body = re.search(r"<tbody>(.*?)</tbody>", summary, re.S).group(1)
    return header, [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _section(html: str, section_id: str) -> str:
    return re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S).group(1)


def _run(metrics: Path | None, out: Path, **kw) -> str:
    report_stage.run(metrics_tsv=metrics, out_html=out, run_name="demo", **kw)
    return out.read_text(encoding="utf-8")


def test_report_is_self_contained_and_complete(fake_run: Path) -> None:
    out = Path("results/demo/report.html")
    html = _run(fake_run, out, config={"run": "demo", "paths": {"out": Path("results")}},
                provenance={"command": "cryo-pipeline report"})
    tags = _walk(html).tags
    header, cells = _summary_cells(html)
    assert [(c[0], c[1]) for c in cells] == [
        ("sphere", "corrupted"), ("sphere", "wbp"), ("real_tomo", "wbp"), ("real_tomo", "cryogen")]
    assert "seam ratio" not in header and "jobs (s)" not in header  # no CN row, no benchmark files
    sphere_wbp, tomo_wbp = cells[1], cells[2]
    assert "18.25" in sphere_wbp and "0.8123" in sphere_wbp and "0.5" in sphere_wbp
    assert tomo_wbp[2] == MISSING and tomo_wbp[3] == MISSING  # NaN and empty PSNR
    assert "nan" not in " ".join(c for row in cells for c in row).lower()
    imgs = [a for t, a in tags if t == "img"]
    # PSNR bars, sweep gains; sphere: ortho, Fourier, FSC; tomogram: ortho, Fourier
    assert len(imgs) == 2 + 3 + 2
    for attrs in imgs:
        assert attrs["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(attrs["src"].split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    for _, attrs in tags:
        for key in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key) or ""), attrs[key]
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*https?://", html)
    assert "@import" not in html and "url(" not in html
    sphere, tomo = _section(html, "dataset-1"), _section(html, "dataset-2")
    assert "Dataset: sphere" in sphere and "Dataset: real_tomo" in tomo
    assert "No ground truth: only the no-reference metrics are shown" in tomo
    assert "No ground truth" not in sphere
    assert "No ground truth for real_tomo: only the no-reference metrics" in _section(html, "summary")
    assert 'id="failures"' not in html and "Partial report" not in html  # nothing expected is missing
    assert "Missing-wedge correction report: demo" in html and "cryo_pipeline 0.1.0" in html
    text = "".join(_walk(html).text)  # entities decoded
    assert '"out": "results"' in text and "cryo-pipeline report" in text
    assert plt.get_fignums() == []


def test_cn_seam_ratio_column_note_and_slab_lines(fake_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = pd.read_csv(fake_run, sep="\t", dtype=str, keep_default_na=False)
    cn = table.iloc[0].copy()
    cn["method"], cn["volume_path"] = "cn", "results/demo/cn/volume.mrc"
    Path("results/demo/cn").mkdir()
    _write(Path(cn["volume_path"]), _sphere())
    Path("results/demo/cn/volume.json").write_text(json.dumps(
        {"device": "cuda", "hostname": "gpu-node-7", "gpu_name": "NVIDIA H100", "seam_ratio": 1.04,
         "slab_boundaries_y": [8, 16]}))
    table = pd.concat([table, cn.to_frame().T], ignore_index=True)
    table["seam_ratio"] = ["", "", "", "", "1.04"]
    table.to_csv(fake_run, sep="\t", index=False)
    drawn = []
    real = figures.orthoslices_figure

    def spy(volumes, **kw):
        drawn.append(kw.get("y_lines"))
        return real(volumes, **kw)

    monkeypatch.setattr(figures, "orthoslices_figure", spy)
    html = _run(fake_run, Path("r.html"))
    header, cells = _summary_cells(html)
    assert "seam ratio" in header and "hardware" in header
    by_method = {(c[0], c[1]): dict(zip(header, c, strict=True)) for c in cells}
    assert [c[1] for c in cells[:3]] == ["corrupted", "wbp", "cn"]  # report order, cn last
    assert by_method[("sphere", "cn")]["seam ratio"] == "1.040"
    assert by_method[("sphere", "wbp")]["seam ratio"] == MISSING
    assert by_method[("sphere", "cn")]["hardware"] == "NVIDIA H100 on gpu-node-7"
    assert "≤ 1.2 means no visible seams" in _section(html, "summary")
    assert "cn seam ratio 1.040 (≤ 1.2: no visible seams)" in _section(html, "dataset-1")
    assert drawn[0] == {"cn": [7.5, 15.5]}  # the seam lies between rows b-1 and b
    assert "gpu-node-7" in _section(html, "runtimes") and "NVIDIA H100" in _section(html, "runtimes")


def test_failure_mid_render_leaves_nothing(fake_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = fake_run.parent / "report.html"
    before = sorted(p.name for p in fake_run.parent.iterdir())

    def boom(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(figures, "fsc_figure", boom)
    with pytest.raises(RuntimeError, match="figure failed"):
        report_stage.run(metrics_tsv=fake_run, out_html=out, run_name="demo",
                         sweep_tsv=fake_run.parent / "sweep.tsv", sweep_png=fake_run.parent / "sweep.png")
    assert not out.exists()
    assert sorted(p.name for p in fake_run.parent.iterdir()) == before


def test_failed_write_keeps_previous_report(fake_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = fake_run.parent / "report.html"
    out.write_text("old report")

    def broken_render(context):
        raise ValueError("template failed")

    monkeypatch.setattr(report_stage, "render_report", broken_render)
    with pytest.raises(ValueError, match="template failed"):
        report_stage.run(metrics_tsv=fake_run, out_html=out, run_name="demo",
                         sweep_tsv=fake_run.parent / "sweep.tsv")
    assert out.read_text() == "old report"
    assert not (fake_run.parent / "sweep.tsv").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report.html")]


def test_missing_column_and_volume_are_reported(fake_run: Path) -> None:
    table = pd.read_csv(fake_run, sep="\t", dtype=str, keep_default_na=False)
    table.drop(columns=["volume_path"]).to_csv("bad.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="volume_path"):
        report_stage.run(metrics_tsv=Path("bad.tsv"), out_html=Path("r.html"), run_name="x")
    pd.concat([table, table.iloc[:1]]).to_csv("dup.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="more than once"):
        report_stage.run(metrics_tsv=Path("dup.tsv"), out_html=Path("r.html"), run_name="x")
    table.loc[0, "volume_path"] = "results/demo/gone.mrc"
    table.to_csv("gone.tsv", sep="\t", index=False)
    with pytest.raises(FileNotFoundError, match="gone.mrc"):
        report_stage.run(metrics_tsv=Path("gone.tsv"), out_html=Path("r.html"), run_name="x")
    assert not Path("r.html").exists()


@pytest.mark.parametrize(("value", "spec", "expected"), [
    (float("nan"), ".2f", MISSING), (None, ".2f", MISSING), ("", "", MISSING), ("  ", "", MISSING),
    (math.inf, ".1f", MISSING), (21.123, ".2f", "21.12"), (0.81134, ".4f", "0.8113"),
    ("cuda:0", "", "cuda:0"), (np.float32(0.5), ".4g", "0.5"), (1.5, "+.2f", "+1.50"),
])
def test_format_value(value, spec, expected) -> None:
    assert format_value(value, spec) == expected


def test_fourier_slice_is_ky0_plane_and_shows_wedge() -> None:
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(16, 12, 20))
    expected = np.abs(np.fft.fftshift(np.fft.fftn(vol)[:, 0, :]))
    got = 10 ** figures.fourier_log_amplitude(vol)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * expected.max())
    wedged = apply_missing_wedge_3d(vol, tilt_min_deg=-45, tilt_max_deg=45)
    missing = missing_wedge_mask_3d(vol.shape, tilt_min_deg=-45, tilt_max_deg=45, fftshift=True)[:, 0, :] == 0
    amp = figures.fourier_log_amplitude(wedged)
    assert amp[missing].max() < amp[~missing].min() - 3  # >1000x weaker inside the wedge


def test_views_affine_matches_volume_affine() -> None:
    vol = np.random.default_rng(2).normal(size=(6, 8, 10))
    a = figures.VolumeViews.from_volume(2.5 * vol - 1.0)
    b = figures.VolumeViews.from_volume(vol).affine(2.5, -1.0)
    for name in ("xy", "xz", "yz", "y_sum"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-12)
    assert a.xy.shape == (8, 10) and a.xz.shape == (6, 10) and a.yz.shape == (6, 8)


def test_figures_return_png_and_close() -> None:
    vol = _sphere(12, 4)
    vols = {figures.GROUND_TRUTH: vol, "wbp": vol * 3, "flat": np.zeros_like(vol)}
    for png in (figures.orthoslices_figure(vols), figures.orthoslices_figure(vols, shared_range=False),
                figures.orthoslices_figure(vols, y_lines={"wbp": [3.5, 7.5]}),
                figures.fourier_slices_figure(vols, voxel_size_angstrom=5.0, tilt_range_deg=(-50, 60)),
                figures.fsc_figure({"wbp": {"frequency_per_angstrom": [0, 0.1], "fsc_curve": [1, 0.2]}})):
        assert png.startswith(PNG_MAGIC)
        assert figures.png_data_uri(png).startswith("data:image/png;base64,iVBOR")
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match="PNG"):
        figures.png_data_uri(b"GIF89a")
    with pytest.raises(ValueError, match="must match"):
        figures.fsc_figure({"wbp": {"frequency_per_angstrom": [0, 0.1, 0.2], "fsc_curve": [1, 0.2]}})
    assert plt.get_fignums() == []
