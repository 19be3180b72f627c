"""Benchmark "codecs": which Zarr codec for intermediate tile stores and for final volumes.

Four float32 volumes of 256 MiB (``--quick``: 16 MiB), each written to a Zarr v3 array of 64³
chunks under ``$TMPDIR`` with every codec, then read back; timed interleaved (codec after
codec, ``REPEATS`` rounds) so that a loaded machine slows every codec alike:

* ``wbp``: a seeded ``mixed_shapes`` phantom (128³), projected over −60…60° (2° steps) with
  Gaussian noise (SNR 0.5), reconstructed by WBP — what a reconstruction looks like;
* ``smooth_output``: that WBP volume low-passed (Gaussian σ = 1.5 voxels) — a network output;
* ``real_deconvolved``: the real microtubule tomogram crop (``shared/data/real``), CTF-
  deconvolved with the pipeline's filter — a real tomogram with full float32 mantissas;
* ``smooth_field``: the stitch benchmark's analytic field (best case for compression).

Each 128³ (or smaller) source is tiled to the size. Columns: ``write_mib_s`` / ``read_mib_s``
(MiB of float32 per wall second, median of the rounds; the write includes creating the chunk
files in the page cache), ``cpu_write_s`` (process CPU seconds of the write), ``ratio`` (bytes
on disk / raw bytes). Blosc runs with one thread (the stitch's tasks run one per core).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from bench.harness import BenchResult, register

REPO = Path(__file__).resolve().parents[1]
REAL_TOMOGRAM = REPO.parent / "shared" / "data" / "real" / "tomo_microtubule13pf_cylindra.mrc"
CHUNK = (64, 64, 64)
REPEATS = 3


def _codecs() -> dict:
    import numcodecs
    from zarr.codecs import BloscCodec, ZstdCodec

    numcodecs.blosc.set_nthreads(1)
    return {
        "none": None,
        "zstd-1": ZstdCodec(level=1),
        "zstd-3": ZstdCodec(level=3),
        "blosc-lz4-shuffle": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
        "blosc-zstd1-shuffle": BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
        "blosc-lz4-bitshuffle": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
    }


def _sources(n: int) -> dict[str, np.ndarray]:
    from cryo_pipeline.io.mrc import read_mrc
    from cryo_pipeline.ops.ctf import deconvolve_volume, wiener_filter_1d
    from cryo_pipeline.ops.noise import add_gaussian_noise
    from cryo_pipeline.ops.phantoms import make_phantom
    from cryo_pipeline.ops.projector import project_3d
    from cryo_pipeline.ops.wbp import weighted_backprojection_3d

    size = min(n, 128)
    angles = np.arange(-60.0, 60.01, 2.0)
    truth = make_phantom("mixed_shapes", shape_zyx=(size,) * 3, seed=0)
    series = add_gaussian_noise(np.asarray(project_3d(truth, angles)), snr=0.5, seed=1)
    wbp = np.asarray(weighted_backprojection_3d(series, angles, volume_shape_zyx=(size,) * 3), dtype=np.float32)
    real = read_mrc(REAL_TOMOGRAM).data.astype(np.float32)
    filt = wiener_filter_1d(pixel_size_angstrom=10.52, voltage_kv=300.0, cs_mm=2.7, defocus_angstrom=30000.0,
                            snr_falloff=1.0, deconv_strength=1.0, highpass_nyquist=0.02)
    z, y, x = np.meshgrid(*(np.arange(size),) * 3, indexing="ij")
    field = (np.sin(0.031 * z + 0.5) * np.cos(0.017 * y) + 0.25 * np.sin(0.023 * x + 0.011 * y)).astype(np.float32)
    return {"wbp": wbp, "smooth_output": ndi.gaussian_filter(wbp, 1.5).astype(np.float32),
            "real_deconvolved": deconvolve_volume(real, filt).astype(np.float32), "smooth_field": field}


def _tiled(source: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    reps = [-(-n // s) for n, s in zip(shape, source.shape, strict=True)]
    return np.ascontiguousarray(np.tile(source, reps)[: shape[0], : shape[1], : shape[2]])


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@register("codecs")
def run(*, quick: bool = False) -> BenchResult:
    """Zarr codecs on float32 tomograms: write/read speed and size, interleaved."""
    import zarr

    shape = (64, 256, 256) if quick else (64, 1024, 1024)
    codecs = _codecs()
    volumes = {name: _tiled(src, shape) for name, src in _sources(128 if not quick else 64).items()}
    mib = np.prod(shape) * 4 / 2**20
    times: dict[tuple[str, str], dict[str, list[float]]] = {}
    ratios: dict[tuple[str, str], float] = {}
    folder = Path(tempfile.mkdtemp(prefix="cryo_codecs_bench_"))
    try:
        for _ in range(REPEATS):
            for vname, volume in volumes.items():
                for cname, codec in codecs.items():
                    path = folder / f"{vname}_{cname}.zarr"
                    shutil.rmtree(path, ignore_errors=True)
                    cpu, start = time.process_time(), time.perf_counter()
                    array = zarr.create_array(store=str(path), shape=shape, chunks=CHUNK, dtype=np.float32,
                                              compressors=codec, fill_value=0)
                    array[...] = volume
                    write_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
                    start = time.perf_counter()
                    back = zarr.open_array(str(path), mode="r")[...]
                    read_s = time.perf_counter() - start
                    if not np.array_equal(back, volume):
                        raise AssertionError(f"codec {cname} did not round-trip {vname}")
                    entry = times.setdefault((vname, cname), {"write": [], "read": [], "cpu": []})
                    entry["write"].append(write_s)
                    entry["read"].append(read_s)
                    entry["cpu"].append(cpu_s)
                    ratios[(vname, cname)] = _folder_bytes(path) / (np.prod(shape) * 4)
                    shutil.rmtree(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for (vname, cname), entry in times.items():
        rows.append({"volume": vname, "codec": cname,
                     "write_mib_s": round(mib / statistics.median(entry["write"]), 1),
                     "read_mib_s": round(mib / statistics.median(entry["read"]), 1),
                     "cpu_write_s": round(statistics.median(entry["cpu"]), 3),
                     "ratio": round(ratios[(vname, cname)], 4), "runs_write_s": entry["write"],
                     "runs_read_s": entry["read"]})
    load = os.getloadavg()
    return BenchResult(
        name="codecs",
        params={"quick": quick, "shape_zyx": list(shape), "chunks": list(CHUNK), "repeats": REPEATS,
                "loadavg_1_5_15": [round(v, 2) for v in load]},
        rows=rows,
        notes=[f"{mib:.0f} MiB float32 per volume, 64^3 chunks, zarr {zarr.__version__}; codecs timed interleaved "
               f"({REPEATS} rounds), medians; blosc with 1 thread; shared machine (load {load[0]:.1f} at the end)."],
    )
