"""Report figures of volumes: orthoslices, central Fourier slices, FSC curves.

Every figure function returns PNG bytes and closes its figure (Agg backend, no
display needed). Volumes are ``zyx`` (DESIGN.md §1), y is the tilt axis, so the
missing wedge lies in the (k_z, k_x) plane: the central slice at k_y = 0 shows it.
Figures accept whole volumes or :class:`VolumeViews` (three central slices and the
projection along y), to which the report stage reduces each volume as soon as it is
read, so it never holds more than one full volume.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cryo_pipeline.report.methods import method_color  # noqa: E402

GROUND_TRUTH = "ground truth"
"""Key of the ground-truth volume in the mappings passed to the figure functions."""

_DPI = 100
_PANEL_IN = 2.4


@dataclass(frozen=True)
class VolumeViews:
    """What the figures need from one volume.

    Attributes
    ----------
    xy, xz, yz : np.ndarray
        Central slices: ``(h, w)`` at the z-centre, ``(d, w)`` at the y-centre and
        ``(d, h)`` at the x-centre.
    y_sum : np.ndarray
        ``(d, w)`` projection along y (the tilt axis). Its 2D DFT is the k_y = 0
        plane of the volume's 3D DFT (projection-slice theorem).
    """

    xy: np.ndarray
    xz: np.ndarray
    yz: np.ndarray
    y_sum: np.ndarray

    @classmethod
    def from_volume(cls, volume: np.ndarray) -> VolumeViews:
        """Reduce ``volume`` (``(d, h, w)``) to its views (float64 copies)."""
        vol = np.asarray(volume)
        if vol.ndim != 3:
            raise ValueError(f"expected a (d, h, w) volume, got shape {vol.shape}")
        d, h, w = vol.shape
        f64 = np.float64
        return cls(xy=np.array(vol[d // 2], dtype=f64), xz=np.array(vol[:, h // 2, :], dtype=f64),
                   yz=np.array(vol[:, :, w // 2], dtype=f64), y_sum=vol.sum(axis=1, dtype=f64))

    def affine(self, a: float, b: float) -> VolumeViews:
        """Views of ``a * volume + b`` (the projection along y gains ``b * h``)."""
        n_y = self.xy.shape[0]
        return VolumeViews(a * self.xy + b, a * self.xz + b, a * self.yz + b, a * self.y_sum + b * n_y)


def _views(volume: np.ndarray | VolumeViews) -> VolumeViews:
    return volume if isinstance(volume, VolumeViews) else VolumeViews.from_volume(volume)


@contextmanager
def closing_subplots(
    nrows: int, ncols: int, figsize: tuple[float, float], **subplot_kw: Any
) -> Iterator[tuple[Figure, np.ndarray]]:
    """A figure with a 2D array of axes, closed on exit even when plotting fails.

    Extra keywords go to ``plt.subplots`` (e.g. ``gridspec_kw``).
    """
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained", **subplot_kw)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (the report's resolution)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """Return ``png`` as a ``data:image/png;base64,...`` URI for an inline ``<img>``."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png_data_uri expects PNG bytes (missing the PNG signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _percentile_range(arrays: list[np.ndarray], lo: float, hi: float) -> tuple[float, float]:
    values = np.concatenate([a.ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(values, [lo, hi]))
    if vmax <= vmin:  # constant image: widen so imshow has a range
        vmin, vmax = vmin - 0.5, vmax + 0.5
    return vmin, vmax


def _reference_keys(keys: list[str], reference: str | None) -> list[str]:
    return [reference] if reference in keys else keys


def orthoslices_figure(volumes: Mapping[str, np.ndarray | VolumeViews], *, shared_range: bool = True,
                       reference: str | None = GROUND_TRUTH,
                       y_lines: Mapping[str, Sequence[float]] | None = None) -> bytes:
    """Central XY, XZ and YZ slices of the volumes side by side: one column per volume.

    Parameters
    ----------
    volumes : mapping of label to `(d, h, w)` volume or :class:`VolumeViews`
        Columns in the mapping's order (ground truth, corrupted, wbp, ...).
    shared_range : bool
        One grey scale for all panels, the 1st–99th percentile of the reference
        volume's slices when present, else of all volumes. ``False``: each volume its own.
    reference : str or None
        Label of the volume whose slices set the shared range.
    y_lines : mapping of label to y positions, optional
        Dashed guides at these y positions (rows, e.g. CN slab boundaries) in that
        volume's XY and YZ panels.

    Returns
    -------
    bytes
        PNG image; rows XY (z centre), XZ (y centre), YZ (x centre).
    """
    if not volumes:
        raise ValueError("orthoslices_figure needs at least one volume")
    y_lines = y_lines or {}
    views = {label: _views(v) for label, v in volumes.items()}
    labels = list(views)
    ref = _reference_keys(labels, reference)
    shared = _percentile_range([s for k in ref for s in (views[k].xy, views[k].xz, views[k].yz)], 1, 99)
    planes = ("XY (z centre)", "XZ (y centre)", "YZ (x centre)")
    with closing_subplots(3, len(labels), figsize=(len(labels) * _PANEL_IN, 3 * _PANEL_IN)) as (fig, axes):
        for col, label in enumerate(labels):
            v = views[label]
            vmin, vmax = shared if shared_range else _percentile_range([v.xy, v.xz, v.yz], 1, 99)
            # XZ and YZ are shown with z vertical, as the beam axis is in a tomogram viewer.
            for row, image in enumerate((v.xy, v.xz, v.yz)):
                ax = axes[row, col]
                ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest")
                ax.set(xticks=[], yticks=[])
                if col == 0:
                    ax.set_ylabel(planes[row], fontsize=9)
            for y in y_lines.get(label, ()):
                axes[0, col].axhline(y, color="yellow", lw=0.7, ls="--")  # XY: y is vertical
                axes[2, col].axvline(y, color="yellow", lw=0.7, ls="--")  # YZ: y is horizontal
            axes[0, col].set_title(label, fontsize=10)
        return figure_png(fig)


def fourier_log_amplitude(volume: np.ndarray | VolumeViews) -> np.ndarray:
    """log10 amplitude of the central (k_z, k_x) Fourier slice at k_y = 0, fftshifted.

    Parameters
    ----------
    volume : `(d, h, w)` volume or :class:`VolumeViews`

    Returns
    -------
    np.ndarray
        ``(d, w)`` array, k_z along axis 0 and k_x along axis 1, zero frequency at
        index ``n // 2``. Amplitudes are floored at 1e-12 of the maximum.
    """
    amp = np.abs(np.fft.fftshift(np.fft.fft2(_views(volume).y_sum)))
    peak = float(amp.max())
    floor = peak * 1e-12 if peak > 0 else 1e-30
    return np.log10(np.maximum(amp, floor))


def _freq_extent(n: int, voxel_size_angstrom: float | None) -> tuple[float, float]:
    step = 1.0 / (n * (voxel_size_angstrom or 1.0))
    return (-(n // 2) - 0.5) * step, ((n - 1) // 2 + 0.5) * step


def fourier_slices_figure(volumes: Mapping[str, np.ndarray | VolumeViews], *,
                          voxel_size_angstrom: float | None = None,
                          tilt_range_deg: tuple[float, float] | None = None,
                          reference: str | None = GROUND_TRUTH) -> bytes:
    """Central (k_z, k_x) Fourier slice (k_y = 0) of each volume as log amplitude.

    Parameters
    ----------
    volumes : mapping of label to `(d, h, w)` volume or :class:`VolumeViews`
        One panel per volume, in the mapping's order.
    voxel_size_angstrom : float or None
        Axis units 1/Å when given, else cycles per voxel.
    tilt_range_deg : (float, float) or None
        ``(tilt_min_deg, tilt_max_deg)``; draws the measured region's boundaries.
    reference : str or None
        Label whose slice sets the shared colour scale (2nd–99.9th percentile);
        all panels when absent.

    Returns
    -------
    bytes
        PNG image.
    """
    if not volumes:
        raise ValueError("fourier_slices_figure needs at least one volume")
    slices = {label: fourier_log_amplitude(v) for label, v in volumes.items()}
    labels = list(slices)
    vmin, vmax = _percentile_range([slices[k] for k in _reference_keys(labels, reference)], 2, 99.9)
    unit = "1/Å" if voxel_size_angstrom else "cycles/voxel"
    with closing_subplots(1, len(labels), figsize=(len(labels) * _PANEL_IN + 0.8, _PANEL_IN + 0.6)) as (fig, axes):
        image = None
        for ax, label in zip(axes[0], labels, strict=True):
            data = slices[label]
            x0, x1 = _freq_extent(data.shape[1], voxel_size_angstrom)
            z0, z1 = _freq_extent(data.shape[0], voxel_size_angstrom)
            image = ax.imshow(data, cmap="magma", vmin=vmin, vmax=vmax, origin="lower",
                              extent=(x0, x1, z0, z1), interpolation="nearest")
            if tilt_range_deg is not None:
                radius = math.hypot(max(abs(x0), x1), max(abs(z0), z1))
                for theta in tilt_range_deg:  # measured direction (k_z, k_x) ∝ (−sin θ, cos θ)
                    t = np.radians(theta)
                    ax.plot([-radius * np.cos(t), radius * np.cos(t)],
                            [radius * np.sin(t), -radius * np.sin(t)], color="cyan", lw=0.8, ls="--")
                ax.set_xlim(x0, x1)
                ax.set_ylim(z0, z1)
            ax.set_title(label, fontsize=10)
            ax.set_xlabel(f"k_x ({unit})", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0, 0].set_ylabel(f"k_z ({unit})", fontsize=8)
        fig.colorbar(image, ax=axes[0, -1], label="log10 |F|", shrink=0.8)
        return figure_png(fig)


_FSC_PANELS = (("fsc_curve", "FSC (all of Fourier space)"),
               ("fsc_measured_curve", "directional FSC: measured region"),
               ("fsc_missing_curve", "directional FSC: missing region"))


def fsc_figure(curves: Mapping[str, Mapping[str, list[float] | np.ndarray]],
               *, panels: Sequence[tuple[str, str]] = _FSC_PANELS) -> bytes:
    """FSC and directional FSC against spatial frequency, one line per method.

    Parameters
    ----------
    curves : mapping of method to curves
        Each value has ``frequency_per_angstrom`` and any of the ``panels``' keys
        (default ``fsc_curve``, ``fsc_measured_curve``, ``fsc_missing_curve``; same
        length). One panel per curve kind present in at least one method.
    panels : sequence of (key, title)
        The curve kinds to draw, in order.

    Returns
    -------
    bytes
        PNG image with dashed lines at FSC = 0.143 and 0.5.
    """
    panels = [(k, t) for k, t in panels if any(len(c.get(k, ())) for c in curves.values())]
    if not panels:
        raise ValueError("fsc_figure needs at least one non-empty FSC curve")
    with closing_subplots(1, len(panels), figsize=(len(panels) * 3.6, 3.2)) as (fig, axes):
        for ax, (key, title) in zip(axes[0], panels, strict=True):
            for method, curve in curves.items():
                values = np.asarray(curve.get(key, ()), dtype=np.float64)
                freq = np.asarray(curve.get("frequency_per_angstrom", ()), dtype=np.float64)
                if values.size == 0:
                    continue
                if values.shape != freq.shape:
                    raise ValueError(f"{method}: {key} has {values.size} points but "
                                     f"frequency_per_angstrom has {freq.size}; they must match")
                ax.plot(freq, values, lw=1.4, label=method, color=method_color(method))
            for level in (0.143, 0.5):
                ax.axhline(level, color="0.5", lw=0.8, ls="--")
                ax.annotate(f"{level}", xy=(1.0, level), xycoords=("axes fraction", "data"),
                            fontsize=7, color="0.4", ha="right", va="bottom")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("spatial frequency (1/Å)", fontsize=9)
            ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        axes[0, 0].set_ylabel("correlation", fontsize=9)
        return figure_png(fig)
