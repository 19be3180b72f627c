"""Stage ``deconvolve_tomogram``: IsoNet-equivalent CTF deconvolution (Wiener-like filter).

Whole-volume mode (``chunk_size_px`` empty) reads the tomogram, filters it with one FFT
and writes it. Chunked mode streams: the input is memory-mapped, the output is a
memory-mapped MRC written under a temporary name beside ``out``, and only one chunk
(plus a small low-frequency spectrum) is in memory at a time — no temp folder.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import DeconvolveConfig
from cryo_pipeline.io.mrc import open_mrc_for_writing, read_mrc, read_mrc_header, read_mrc_memmap, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.ops.ctf import deconvolve_chunked, deconvolve_volume, wiener_filter_1d

log = logging.getLogger(__name__)

N_FILTER_POINTS = 2048


def _cpus() -> int:
    """CPUs this process may use (a SLURM/Snakemake allocation sets the affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def ctf_parameters(dataset: DatasetRow) -> dict[str, float | bool]:
    """The dataset's CTF columns as keyword arguments of :func:`wiener_filter_1d`.

    Raises
    ------
    ValueError
        The row has no ``defocus_angstrom`` (the workflow skips this stage then).
    """
    if dataset.defocus_angstrom is None:
        raise ValueError(
            f"dataset {dataset.dataset}: column defocus_angstrom is empty, so there is no CTF to deconvolve; "
            "fill defocus_angstrom (and voltage_kv, cs_mm) in the dataset sheet or skip deconvolve_tomogram"
        )
    return {
        "voltage_kv": float(dataset.voltage_kv),  # required with a defocus by DatasetRow
        "cs_mm": float(dataset.cs_mm),
        "defocus_angstrom": float(dataset.defocus_angstrom),
        "amplitude_contrast": float(dataset.amplitude_contrast),
        "phase_shift_deg": float(dataset.phase_shift_deg),
        "phase_flipped": bool(dataset.phase_flipped),
    }


@reads("deconvolve_tomogram")
def run(*, tomogram_path: Path, dataset: DatasetRow, cfg: DeconvolveConfig, out: Path) -> None:
    """Deconvolve ``tomogram_path`` and write ``out`` (MRC, same voxel size and origin) + ``.json``.

    The voxel size is the tomogram header's (it reflects any binning); the sheet's
    ``voxel_size_angstrom`` is used only when the header has none.
    """
    tomogram_path, out = Path(tomogram_path), Path(out)
    ctf = ctf_parameters(dataset)
    header = read_mrc_header(tomogram_path)
    override = None if header["voxel_size_angstrom"] > 0 else dataset.voxel_size_angstrom
    chunked = cfg.chunk_size_px is not None
    label = f"cryo_pipeline deconv snr {cfg.snr_falloff:g} strength {cfg.deconv_strength:g}"
    start = time.perf_counter()
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        if chunked:
            volume, voxel = read_mrc_memmap(tomogram_path, voxel_size_angstrom=override)
        else:
            loaded = read_mrc(tomogram_path, voxel_size_angstrom=override)
            volume, voxel = loaded.data, loaded.voxel_size_angstrom
        filter_1d = wiener_filter_1d(
            N_FILTER_POINTS, pixel_size_angstrom=voxel, snr_falloff=cfg.snr_falloff,
            deconv_strength=cfg.deconv_strength, highpass_nyquist=cfg.highpass_nyquist, **ctf,
        )
        extra = {"mode": "chunked" if chunked else "whole", "voxel_size_angstrom": voxel,
                 "filter": {"n_points": N_FILTER_POINTS, "pixel_size_angstrom": voxel, "snr_falloff": cfg.snr_falloff,
                            "deconv_strength": cfg.deconv_strength, "highpass_nyquist": cfg.highpass_nyquist, **ctf}}
        if chunked:
            with open_mrc_for_writing(tmp_out, volume.shape, voxel_size_angstrom=voxel,
                                      origin_angstrom=header["origin_angstrom"], labels=[label]) as dst, \
                    tqdm(desc=f"deconvolve {dataset.dataset}", unit="chunk", file=sys.stderr,
                         disable=None, mininterval=5.0) as bar:

                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)
                    if (10 * done) // total > (10 * (done - 1)) // total:  # log files get every 10 %
                        log.info("%s: chunk %d/%d", dataset.dataset, done, total)

                deconvolve_chunked(volume, filter_1d, chunk_px=cfg.chunk_size_px, overlap_px=cfg.chunk_overlap_px,
                                   halo_px=cfg.chunk_halo_px, out=dst, workers=_cpus(), progress=progress)
                extra["n_chunks"] = int(bar.total or 0)
            del volume
        else:
            result = deconvolve_volume(volume, filter_1d, workers=_cpus())
            write_mrc(tmp_out, result, voxel_size_angstrom=voxel, origin_angstrom=header["origin_angstrom"],
                      labels=[label])
        runtime = time.perf_counter() - start
        write_stage_meta(tmp_meta, stage="deconvolve_tomogram", config=cfg, dataset=dataset, runtime_s=runtime,
                         extra=extra)
    log.info(
        "deconvolved %s %s (%s%s) at %.3f A/voxel, defocus %.0f A, %g kV, Cs %g mm -> %s in %.1f s",
        dataset.dataset, tuple(header["shape_zyx"]), extra["mode"],
        f", {extra['n_chunks']} chunks of {cfg.chunk_size_px} px" if chunked else "", voxel,
        ctf["defocus_angstrom"], ctf["voltage_kv"], ctf["cs_mm"], out, runtime,
    )
