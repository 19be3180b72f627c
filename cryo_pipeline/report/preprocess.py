"""Report section for the preprocessing (bin → deconvolve → mask → extract) of one dataset.

Input is the extraction record ``results/<run>/<dataset>/preprocess/subtomos.json``
written by the ``extract_subtomos`` stage; it names the tomogram and the mask it used,
the mask fraction and the number of cubes kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cryo_pipeline.io.mrc import read_mrc_memmap
from cryo_pipeline.report.figures import closing_subplots, figure_png, png_data_uri
from cryo_pipeline.report.html import FigureBlock

RECORD_KEYS = ("tomogram_path", "mask_path", "mask_fraction", "n_cubes", "n_val", "cube_size_px")


def read_extraction_record(path: Path) -> dict[str, Any]:
    """Read an extraction record and check it has what the report shows."""
    with Path(path).open() as handle:
        record = json.load(handle)
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"extraction record {path} lacks {', '.join(missing)} (was it written by extract-subtomos?)")
    return record


def mask_overlay_figure(tomogram: np.ndarray, mask: np.ndarray) -> bytes:
    """Central XY and XZ slices of the tomogram with the mask as a translucent overlay.

    Parameters
    ----------
    tomogram, mask : numpy.ndarray
        ``(d, h, w)``; the mask is non-zero inside.
    """
    d, h, _ = tomogram.shape
    slices = [("XY (z centre)", tomogram[d // 2], mask[d // 2]), ("XZ (y centre)", tomogram[:, h // 2], mask[:, h // 2])]
    lo, hi = np.percentile(np.concatenate([s[1].ravel() for s in slices]), [1, 99])
    ratios = [image.shape[1] / image.shape[0] for _, image, _ in slices]
    with closing_subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": ratios}) as (fig, axes):
        for ax, (title, image, region) in zip(axes[0], slices, strict=True):
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            overlay = np.zeros((*region.shape, 4))
            overlay[region > 0] = (1.0, 0.35, 0.1, 0.35)
            ax.imshow(overlay, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        return figure_png(fig)


def preprocess_blocks(record: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[FigureBlock]]:
    """Facts and figures of one dataset's preprocessing (reads its tomogram and mask)."""
    tomogram, _ = read_mrc_memmap(Path(record["tomogram_path"]))  # only two slices are read
    mask, _ = read_mrc_memmap(Path(record["mask_path"]))
    facts = [
        ("preprocessed tomogram", str(record["tomogram_path"])),
        ("mask fraction", f"{100.0 * float(record['mask_fraction']):.1f} % of voxels"),
        ("subtomograms", f"{record['n_cubes']} cube(s) of {record['cube_size_px']}³ ({record['n_val']} held out for validation)"),
    ]
    block = FigureBlock(
        "Density mask over the preprocessed tomogram",
        f"Orange: the density mask ({100.0 * float(record['mask_fraction']):.1f} % of voxels); grey range: "
        "1st–99th percentile. Subtomograms are drawn only where the mask covers at least "
        "min_mask_fraction of a cube.",
        png_data_uri(mask_overlay_figure(tomogram, mask)),
    )
    return facts, [block]
