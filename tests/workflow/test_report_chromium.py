"""The report of a real (tiny) sweep: a failing dataset, snakemake --report, and headless Chromium.

One module-scoped sweep runs Snakemake twice on four datasets: two synthetic (one through the
IsoNet-style path at toy scale, so loss curves and the mask overlay appear), one real STEM tilt
series from ../shared/data/real/ (no ground truth), and one whose source map is corrupt.

1. ``--keep-going``: the corrupt dataset fails, the others finish, Snakemake exits non-zero and
   its error handler writes a partial report that lists the failure with its log path.
2. With the corrupt row removed, rule report writes the full report and the sweep summary.

Chromium renders both reports over the DevTools protocol (``--remote-debugging-pipe``, no
extra Python packages): every ``<img>`` must have decoded (naturalWidth > 0), the tables must
be there, and no request may leave the file (the report is self-contained). A full-page
screenshot of each is kept in tests/artifacts/ (or $CRYO_PIPELINE_TEST_ARTIFACTS).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

REAL = REPO.parent / "shared" / "data" / "real"
NEEDLE = REAL / "tiltseries_haadf_needle_etspy.mrc"
RUN = "sweep"
HANG_S = 1200  # waits on Chromium events: only a hang-catcher (page load takes what the machine gives)
COLUMNS = "\t".join(("dataset", "kind", "source", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg",
                     "tilt_step_deg", "corruption", "snr", "methods", "angles", "seed", "shape_px")) + "\n"
GOOD_ROWS = (
    "sphere_fourier\tsynthetic\thollow_sphere\t8.0\t-60\t60\t2\tfourier\t\tisonet\t\t0\t32\n"
    "shapes.ts\tsynthetic\tmixed_shapes\t8.0\t-50\t65\t3\ttiltseries\t20\twbp\t\t1\t24x32x32\n"
    f"needle_stem\ttiltseries\t{NEEDLE}\t33.6\t-60\t60\t\t\t\twbp\t{NEEDLE.with_suffix('.rawtlt')}\t0\t\n"
)
BROKEN_ROW = "broken_map\tsynthetic\tbroken.mrc\t8.0\t-60\t60\t2\tfourier\t\t\t\t0\t\n"
TOY_SCALE = {  # the IsoNet-style path in seconds: 6 steps of a depth-1 U-Net++ on 16³ crops
    "extract": {"cube_size_px": 16, "n_subtomos": 8, "min_mask_fraction": 0.0},
    "train": {"crop_px": 16, "base_channels": 4, "depth": 1, "epochs": 2, "steps_per_epoch": 3, "batch_size": 1},
    "predict": {"tile_px": 16, "overlap_px": 4},
    "wbp": {"thickness_px": 48},  # the real tilt series: 48 x 256 x 256 instead of 256³
}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-pipe")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both Snakemake runs of the sweep; their results, and a copy of the partial report."""
    if not NEEDLE.is_file():
        pytest.skip(f"the real tilt series {NEEDLE} is not there (../shared/data/real/)")
    workdir = tmp_path_factory.mktemp("sweep")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = RUN
    for section, values in TOY_SCALE.items():
        config[section].update(values)
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    sheet = workdir / "config" / "datasets.tsv"
    sheet.write_text(COLUMNS + GOOD_ROWS + BROKEN_ROW)
    (workdir / "config" / "broken.mrc").write_bytes(b"this is not an MRC file\n" * 64)
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    started = time.monotonic()
    failed = run_snakemake(workdir, "--cores", "2", "--keep-going")
    partial = workdir / "partial_report.html"
    # the partial report never takes report.html's name (the rerun must still see it missing)
    assert not (workdir / "results" / RUN / "report.html").exists()
    if (workdir / "results" / RUN / "report.partial.html").is_file():
        shutil.copy(workdir / "results" / RUN / "report.partial.html", partial)
    sheet.write_text(COLUMNS + GOOD_ROWS)  # the user drops the broken dataset and runs again
    fixed = run_snakemake(workdir, "--cores", "2")
    assert not (workdir / "results" / RUN / "report.partial.html").exists()  # rule report removed it
    print(f"sweep runs took {time.monotonic() - started:.0f} s in {workdir}")
    return {"workdir": workdir, "failed": failed, "fixed": fixed, "partial": partial,
            "run_dir": workdir / "results" / RUN}


def test_a_failing_dataset_does_not_stop_the_sweep(sweep: dict) -> None:
    failed, workdir = sweep["failed"], sweep["workdir"]
    assert failed.returncode != 0, "a failed dataset must still fail the Snakemake run"
    output = failed.stdout + failed.stderr
    log = workdir / "logs" / RUN / "simulate_volume" / "broken_map.log"
    assert "error:" in log.read_text()
    for name, method in (("sphere_fourier", "isonet"), ("shapes.ts", "wbp"), ("needle_stem", "wbp")):
        assert (sweep["run_dir"] / name / method / "metrics.tsv").is_file(), (name, output[-3000:])
    assert "Partial report of the finished datasets" in output
    html = sweep["partial"].read_text()
    failures = re.search(r'<section id="failures">(.*?)</section>', html, re.S).group(1)
    assert "broken_map" in failures and f"logs/{RUN}/simulate_volume/broken_map.log" in failures
    assert "not an MRC file" in failures or "MRC" in failures  # the log's last lines
    assert "The workflow failed" in html
    for name in ("sphere_fourier", "shapes.ts", "needle_stem"):
        assert f"Dataset: {name}" in html


def test_the_fixed_sweep_writes_one_report_with_the_sweep_table(sweep: dict) -> None:
    fixed, run_dir = sweep["fixed"], sweep["run_dir"]
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    html = (run_dir / "report.html").read_text()
    assert 'id="failures"' not in html and "Partial report" not in html
    sweep_table = re.search(r'<table class="sweep">(.*?)</table>', html, re.S).group(1)
    for name in ("sphere_fourier", "shapes.ts", "needle_stem", "mean"):
        assert f">{name}<" in sweep_table
    summary = pd.read_csv(run_dir / "sweep_summary.tsv", sep="\t", keep_default_na=False)
    assert sorted(set(summary["dataset"])) == ["needle_stem", "shapes.ts", "sphere_fourier"]
    status = dict(zip(zip(summary["dataset"], summary["method"], strict=True), summary["status"], strict=True))
    assert status[("needle_stem", "wbp")] == "no ground truth" and status[("sphere_fourier", "isonet")] == "ok"
    gains = summary.set_index(["dataset", "method"])["psnr_gain_db"]
    assert gains[("sphere_fourier", "corrupted")] == "0" and gains[("needle_stem", "wbp")] == ""
    assert float(gains[("sphere_fourier", "isonet")]) > 0  # the toy-scale training still fills some wedge
    assert (run_dir / "sweep_summary.png").read_bytes().startswith(b"\x89PNG")
    for title in ("Central orthoslices", "Central Fourier slice", "Fourier shell correlation", "Training losses",
                  "Density mask over the preprocessed tomogram", "Wall time per dataset and rule",
                  "Gain over the corrupted input per method", "PSNR per method"):
        assert title in html, title
    needle = re.search(r'<h2>Dataset: needle_stem</h2>(.*?)</section>', html, re.S).group(1)
    assert "No ground truth: only the no-reference metrics" in needle
    assert "jobs (s)" in html and "train_cryogen" in html  # runtimes from the benchmark files


def test_snakemake_report_holds_the_report_and_the_sweep(sweep: dict, tmp_path: Path) -> None:
    assert sweep["fixed"].returncode == 0
    archive = tmp_path / "snakemake_report.zip"
    result = run_snakemake(sweep["workdir"], "--report", str(archive))
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
        raw = {Path(n).name: bundle.read(n) for n in names if "/data/raw/" in n}
        index = bundle.read("snakemake_report/report.html").decode("utf-8")
    assert set(raw) == {"report.html", "sweep_summary.tsv", "sweep_summary.png"}, names
    assert raw["report.html"] == (sweep["run_dir"] / "report.html").read_bytes()
    assert raw["sweep_summary.tsv"] == (sweep["run_dir"] / "sweep_summary.tsv").read_bytes()
    for text in ("Sweep summary", "gain over the corrupted input", "Missing-wedge correction of cryo-ET volumes"):
        assert text in index, text  # categories, captions and the workflow description


# --- headless Chromium over the DevTools protocol ----------------------------------------------
def _chromium() -> str:
    """The Chromium binary; installed with apt-get when missing (as root), else the test is skipped."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get install chromium)")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    attempts = []
    for command in (install, ["apt-get", "update"], install):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        attempts.append(f"{' '.join(command)}: exit {done.returncode} {done.stderr.strip()[-300:]}")
        if command is install and done.returncode == 0:
            break
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is missing and could not be installed: " + " | ".join(attempts))
    return found


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._write = os.pipe()
        self._read, from_chrome_w = os.pipe()
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        # bash puts the pipe ends on fds 3 (commands in) and 4 (replies out), then execs Chromium
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', *args],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = HANG_S) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method: str, *, timeout: float = HANG_S) -> dict:
        """The first event ``method`` (already received or arriving within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._receive(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


PAGE_CHECK = """
(async () => {
  const images = Array.from(document.images);
  const decoded = await Promise.all(images.map(i => i.decode().then(() => true, () => false)));
  return {
    images: images.map((i, k) => ({alt: i.alt, decoded: decoded[k], width: i.naturalWidth,
                                   height: i.naturalHeight, scheme: i.src.split(':')[0]})),
    tables: Array.from(document.querySelectorAll('table')).map(t => ({
      cls: t.className, headers: t.tHead ? t.tHead.querySelectorAll('th').length : 0,
      rows: t.tBodies.length ? t.tBodies[0].rows.length : 0})),
    sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})()
"""


def render(binary: str, html: Path, screenshot: Path, profile: Path) -> tuple[dict, list[str]]:
    """Load ``html`` in headless Chromium; the page check's result, the URLs requested, a screenshot."""
    browser = DevTools(binary, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=HANG_S)
        check = browser.send("Runtime.evaluate", {"expression": PAGE_CHECK, "awaitPromise": True,
                                                  "returnByValue": True}, session=session)
        page = check["result"]["value"]
        height = min(int(page["height"]), 16000)
        shot = browser.send("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True,
                             "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}},
                            session=session, timeout=HANG_S)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        requests = [e["params"]["request"]["url"] for e in browser.events
                    if e.get("method") == "Network.requestWillBeSent"]
        return page, requests
    finally:
        browser.close()


def _artifacts() -> Path:
    folder = Path(os.environ.get("CRYO_PIPELINE_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("which", ["full", "partial"])
def test_chromium_renders_every_image_and_table(sweep: dict, which: str, tmp_path: Path) -> None:
    html = sweep["run_dir"] / "report.html" if which == "full" else sweep["partial"]
    assert html.is_file(), f"no {which} report"
    binary = _chromium()
    screenshot = _artifacts() / f"report_{which}.png"
    page, requests = render(binary, html, screenshot, tmp_path / "profile")
    print(f"screenshot of the {which} report: {screenshot}")
    images = page["images"]
    assert len(images) >= 10, images
    broken = [i["alt"] for i in images if not (i["decoded"] and i["width"] > 0 and i["height"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    assert {i["scheme"] for i in images} == {"data"}
    tables = {t["cls"]: t for t in page["tables"]}
    assert tables["summary"]["rows"] >= 6 and tables["summary"]["headers"] >= 15
    assert tables["sweep"]["rows"] == (4 if which == "full" else 5)  # three datasets (+ broken) + mean
    if which == "partial":
        assert tables["failures"]["rows"] == 1 and "failures" in page["sections"]
    assert {"summary", "sweep", "runtimes", "config", "provenance"} <= set(page["sections"])
    outside = [u for u in requests if not u.startswith(("data:", "file:"))]
    assert outside == [], f"the report requested {outside}"
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 50_000
