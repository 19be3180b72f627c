"""One frozen pydantic model per stage: every scientific parameter, bounded and documented.

Run-time settings are not here: threads, GPUs, memory and walltime belong to
``profiles/``; the device, job counts and the Dask cluster to the ``execution:`` section
(:mod:`cryo_pipeline.config.execution`). Which keys each rule reads is declared in
:mod:`cryo_pipeline.config.reads`. The workflow's JSON schema is generated from these models
(:mod:`cryo_pipeline.config.schema`), so a typo in ``config/config.yaml`` fails at
dry-run time with the key's name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cryo_pipeline.config.methods import WBP


class StageConfig(BaseModel):
    """Base: unknown keys are errors, NaN/Inf are not numbers, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SimulateConfig(StageConfig):
    """``simulate_volume``: ground truth from a phantom or a real map."""

    map_interpolation_order: int = Field(
        3, ge=0, le=5, description="Spline order used to rotate a real map (0 nearest … 3 cubic)."
    )
    map_random_rotation: bool = Field(
        True, description="Rotate a real map by a seeded uniform random rotation (CryoGEN A.7.3/A.7.4)."
    )
    map_normalize: bool = Field(
        True,
        description="Scale a real map so its solvent (median of the box faces) is 0 and its maximum 1.",
    )


class FourierWedgeConfig(StageConfig):
    """``apply_fourier_wedge``: the CryoGEN paper's corruption (zero the missing wedge)."""

    soft_edge_deg: float = Field(
        0.0, ge=0.0, le=30.0, description="Raised-cosine roll-off outside the tilt range; 0 = hard edge (paper)."
    )


class ProjectConfig(StageConfig):
    """``project_tilt_series``: ground truth → tilt series (the CN paper's corruption)."""

    detector_width_px: int | None = Field(
        None, ge=1, description="Detector width in pixels; empty = the volume's x size."
    )
    projector: Literal["supersampled", "footprint"] = Field(
        "supersampled",
        description="supersampled: bicubic ray sampling, k-fold finer in ray step and detector, binned "
        "(independent of the projector CN and WBP invert: no inverse crime); footprint: the same sparse "
        "footprint projector CN fits through (the inverse crime; flatters CN and WBP).",
    )
    supersampling: int = Field(
        2, ge=1, le=8, description="projector: supersampled: ray samples per voxel and line integrals per pixel."
    )


class AlignConfig(StageConfig):
    """``align_tilt_series``: how a raw tilt series (``alignment``/``tilt_axis_deg`` rows) becomes the series every
    stage reads."""

    bin_factor: int = Field(
        1, ge=1, le=16,
        description="Fourier-bin the aligned images by this factor in the same pass (centred as block averaging). "
        "The sheet's voxel_size_angstrom is then the binned pixel size (raw × bin_factor), as every later stage "
        "reads the binned series.",
    )
    subtract_background: bool = Field(
        False,
        description="Subtract each raw image's background level (the median of its outermost ring of pixels) so "
        "the background is 0: detectors that count with an offset (HAADF-STEM). Leave false for cryo-ET contrast.",
    )


class WbpConfig(StageConfig):
    """``reconstruct_wbp``: weighted back-projection, the baseline."""

    filter: Literal["ramp", "shepp-logan", "cosine", "hann", "hamming"] = Field(
        "ramp", description="Apodisation of the ramp filter."
    )
    thickness_px: int | None = Field(
        None, ge=1, description="Reconstructed z thickness for real tilt series; empty = the detector width."
    )


SIRT = "sirt"
"""``reference.method``: non-negative SIRT (the other one is WBP)."""


class ReferenceConfig(StageConfig):
    """``reconstruct_reference``: the full-range reference of a row with a reference range (issue 12)."""

    method: Literal[WBP, SIRT] = Field(
        WBP,
        description="wbp: weighted back-projection (wbp.filter); sirt: non-negative SIRT, for data with a zero "
        "background (HAADF-STEM, phantoms), measured to give a better reference there.",
    )
    sirt_iterations: int = Field(50, ge=1, le=1000, description="SIRT updates (method sirt).")
    filter: Literal["ramp", "shepp-logan", "cosine", "hann", "hamming"] = Field(
        "ramp", description="Apodisation of the ramp filter (method wbp)."
    )


class EvaluateConfig(StageConfig):
    """``evaluate``: metrics against the ground truth (DESIGN.md §4)."""

    windowed_ssim: bool = Field(True, description="Compute the windowed 3D SSIM (Gaussian σ = 1.5 voxels).")
    default_tilt_step_deg: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="Angular step used for the directional-FSC measured region when the sheet gives none.",
    )


class ReportConfig(StageConfig):
    """``report``: the self-contained HTML report."""

    title: str = Field("cryo_pipeline report", description="Heading of the HTML report.")


class BinConfig(StageConfig):
    """``bin_tomogram``: anti-aliased binning by Fourier cropping."""

    factor: float = Field(
        1.0, ge=1.0, le=16.0, description="Binning factor (integer or fractional); 1 = keep the sampling."
    )


class DeconvolveConfig(StageConfig):
    """``deconvolve_tomogram``: IsoNet-equivalent Wiener-like CTF deconvolution (peers.md §1a)."""

    snr_falloff: float = Field(1.0, ge=0.0, le=10.0, description="SNR fall-off with frequency (IsoNet snrfalloff).")
    deconv_strength: float = Field(
        1.0, ge=-5.0, le=5.0, description="log10 of the SNR at low frequency (IsoNet deconvstrength)."
    )
    highpass_nyquist: float = Field(
        0.02, gt=0.0, le=1.0, description="High-pass cut as a fraction of Nyquist (IsoNet highpassnyquist)."
    )
    chunk_size_px: int | None = Field(
        None, ge=16, le=4096, description="Deconvolve in cubes of this size (large tomograms); empty = whole volume."
    )
    chunk_overlap_px: int = Field(
        16, ge=0, le=512, description="Overlap between neighbouring chunks, blended with a smooth window."
    )
    chunk_halo_px: int = Field(
        48, ge=0, le=1024, description="Extra context filtered around each chunk and then discarded."
    )


class MaskConfig(StageConfig):
    """``make_mask``: IsoNet-style density mask (local-max density ∩ local std), peers.md §1b."""

    patch_size_px: int = Field(4, ge=1, le=64, description="Patch size of the local filters (IsoNet patch_size).")
    density_percentage: float = Field(
        50.0, gt=0.0, le=100.0, description="Percent of voxels kept by the local-max density mask."
    )
    std_percentage: float = Field(50.0, gt=0.0, le=100.0, description="Percent of voxels kept by the local-std mask.")
    z_crop: float = Field(
        0.0, ge=0.0, lt=0.5, description="Fraction of z slices removed at EACH end (0.2 = 20 % top and bottom)."
    )
    density_contrast: Literal["auto", "dark", "bright"] = Field(
        "auto",
        description=(
            "Whether density is darker than the solvent (raw cryo-ET; the volume is negated, as IsoNet does) or "
            "brighter (synthetic phantoms, contrast-inverted tomograms). auto: bright if the histogram's upper "
            "tail is heavier, i.e. (p99.9 - median) > (median - p0.1), else dark."
        ),
    )


class ExtractConfig(StageConfig):
    """``extract_subtomos``: cubes inside the mask, into one Zarr store per tomogram."""

    cube_size_px: int = Field(64, ge=8, le=512, description="Edge of the stored cubes (before √2 enlargement).")
    n_subtomos: int = Field(100, ge=1, le=100000, description="Number of cubes for random sampling.")
    sampling: Literal["random", "grid"] = Field("random", description="Random centres in the mask, or a regular grid.")
    grid_stride_px: int | None = Field(None, ge=1, description="Grid stride; empty = the cube size.")
    min_mask_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="Keep a cube only if this fraction of its voxels is inside the mask."
    )
    enlarge_for_rotation: bool = Field(
        False, description="Store cubes √2 larger (even) so rotations leave no empty corners."
    )
    validation_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Seeded fraction of cubes held out for validation."
    )


class TrainConfig(StageConfig):
    """``train_cryogen``: CryoGEN (Algorithm 1) or the IsoNet-style baseline, on subtomograms.

    Noise scales are in units of the tomogram's standard deviation (data are normalised
    by the whole tomogram's mean and std); each step draws a level U(0, 1] × scale.
    """

    crop_px: int = Field(64, ge=16, le=256, description="Random crop of the stored cubes fed to the networks.")
    base_channels: int = Field(16, ge=4, le=128, description="U-Net++ channels at the first level.")
    depth: int = Field(3, ge=1, le=5, description="U-Net++ depth; crop_px must be divisible by 2**depth.")
    norm: Literal["group", "instance", "none"] = Field("group", description="Normalisation layers of the U-Net++.")
    disc_channels: int = Field(16, ge=4, le=128, description="Channels of the energy model's first conv layer.")
    spectral_norm: bool = Field(True, description="Spectral normalisation in the energy model.")
    adversarial_loss: Literal["bce", "hinge", "wgan-gp"] = Field(
        "bce", description="Energy-model loss: non-saturating BCE, hinge, or WGAN with gradient penalty."
    )
    gradient_penalty_weight: float = Field(10.0, ge=0.0, description="WGAN-GP penalty weight.")
    adversarial_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="Weight of E_φ(fake) in θ's loss (at the end, with adversarial_weight_start)."
    )
    adversarial_weight_start: float | None = Field(
        None, ge=0.0, le=100.0,
        description="Weight of E_φ(fake) while λ is at its start; it then rises linearly in λ to adversarial_weight "
        "as λ decays (the prior takes over from the consistency term). Empty = constant adversarial_weight.",
    )
    critic_input: Literal["matched", "fill", "paper"] = Field(
        "fill",
        description="matched: real = T_M(y + ε), fake = T_M(R(x̂) + ε′) with matched noise, central half of each "
        "edge (no shortcut); fill: only x̂'s missing region rotated into view, Q(v) = T_M(R(v − T_M v)), against "
        "the measured data in the same band, Q(R⁻¹y + ε); paper: real = y + ε, fake = T_M(R(x̂)) as printed (the "
        "critic tells them apart without looking at content).",
    )
    critic_features: Literal["volume", "volume+amplitude"] = Field(
        "volume", description="What E_φ reads: the volume, or the volume and its log Fourier amplitude (2 channels)."
    )
    critic_steps: int = Field(1, ge=1, le=20, description="E_φ updates per g_θ update.")
    r1_weight: float = Field(0.0, ge=0.0, le=1000.0, description="R1 gradient penalty on real samples (0 = off).")
    batch_size: int = Field(1, ge=1, le=256, description="Subtomograms per step (per process under DDP).")
    epochs: int = Field(20, ge=1, le=10000, description="Epochs; λ is constant in the first, then decays linearly.")
    steps_per_epoch: int = Field(100, ge=1, le=100000, description="Optimiser steps per epoch.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, description="Adam learning rate of g_θ (peak).")
    learning_rate_energy: float = Field(1e-4, gt=0.0, le=1.0, description="Adam learning rate of E_φ (peak).")
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Linear warm-up share of all steps.")
    noise_scale_real: float = Field(0.1, ge=0.0, le=10.0, description="σ: instance noise on real samples.")
    noise_scale_generator: float = Field(0.1, ge=0.0, le=10.0, description="σ_g: generator input noise.")
    noise_scale_consistency: float = Field(0.1, ge=0.0, le=10.0, description="σ_h: consistency-path noise.")
    sigma_n: float = Field(0.3, gt=0.0, le=100.0, description="Estimated noise std; the data term weighs 1/(2σ_n²).")
    consistency_weight: float = Field(1.0, ge=0.0, le=1000.0, description="λ at the start (IsoNet: fixed).")
    consistency_weight_final: float = Field(0.5, ge=0.0, le=1000.0, description="λ at the end of training.")
    consistency_target: Literal["prediction", "filled"] = Field(
        "filled",
        description="x̃ of the consistency loss: g_θ'(y) as in the paper ('prediction'), or the measured "
        "region of y plus the missing region of g_θ'(y) ('filled', IsoNet's combined volume).",
    )
    missing_region_weight: float = Field(
        20.0, ge=0.0, le=1000.0, description="Extra weight of the missing-wedge region in the consistency loss."
    )
    seed: int = Field(0, ge=0, description="Seed of all random draws (crops, rotations, noise, init).")


class PredictConfig(StageConfig):
    """``predict_cryogen``: tiled, overlapping, weighted-blended inference."""

    tile_px: int = Field(64, ge=16, le=512, description="Tile edge; divisible by 2**depth of the model.")
    overlap_px: int = Field(16, ge=0, le=256, description="Overlap between tiles, blended with a cosine window.")
    batch_size: int = Field(4, ge=1, le=256, description="Tiles per forward pass.")
    keep_measured: bool = Field(
        True, description="Put the input's measured Fourier region back into each tile (data consistency)."
    )


class CnConfig(StageConfig):
    """``plan_slabs``, ``fit_slab_seed``, ``fit_slab``: coordinate networks fitted per y-slab.

    Paper defaults (Van Veen et al. 2024): SIREN 4 × 256, w0 = 30, L1 loss, λ_TV = 0;
    seed slab 2000 iterations at 1e-3 → 1e-4, every other slab 400 at 1e-4 → 1e-5 from
    the seed's weights; slab thickness from a parameter ratio of 1/8.
    """

    width: int = Field(256, ge=8, le=4096, description="Units per hidden layer of the SIREN.")
    n_hidden_layers: int = Field(4, ge=1, le=16, description="Sine layers of the SIREN.")
    w0: float = Field(30.0, gt=0.0, le=1000.0, description="SIREN frequency factor.")
    fourier_features: int = Field(0, ge=0, le=4096, description="Gaussian Fourier features before the SIREN; 0 = off.")
    fourier_scale: float = Field(4.0, gt=0.0, le=1000.0, description="Std of the Fourier-feature frequencies.")
    nonnegative: bool | Literal["auto"] = Field(
        "auto",
        description="Density >= 0 (softplus output): right for densities bright on a ~0 background. auto: true "
        "for the built-in phantoms, false for maps and real data (a soft or negative solvent, raw cryo-ET "
        "contrast), decided per dataset.",
    )
    slab_px: Annotated[int, Field(ge=1)] | Literal["all"] | None = Field(
        None,
        description="Core rows per slab; 'all' = one network on the whole volume (no halo, no blending); "
        "empty = from params_per_voxel (the paper's ratio; one network when that covers the height).",
    )
    params_per_voxel: float = Field(
        0.125, gt=0.0, le=100.0, description="Network parameters per slab voxel when slab_px is empty (paper: 1/8)."
    )
    halo_px: int = Field(
        4, ge=0, description="Rows fitted beyond each side of the slab and blended in y; < slab_px; unused with "
        "one slab."
    )
    thickness_px: int | None = Field(
        None, ge=1, description="Reconstructed z thickness for real tilt series; empty = the detector width."
    )
    schedule: Literal["seed", "chain"] = Field(
        "seed",
        description="seed: every slab starts from the seed slab's weights (all in parallel); chain: from its "
        "neighbour towards the middle (the paper's order, sequential).",
    )
    loss: Literal["l1", "l2"] = Field("l1", description="Projection loss.")
    tv_weight: float = Field(0.0, ge=0.0, le=100.0, description="λ of the total-variation term (0 = off).")
    seed_window: Literal["slab", "volume"] = Field(
        "volume",
        description="volume: the seed network fits rows from the whole height, so every slab starts from a network "
        "that has seen its rows; slab: the middle slab's window (the paper).",
    )
    slab_optimizer: Literal["continue", "restart"] = Field(
        "continue",
        description="continue: every slab carries on the seed's Adam moments (its weights and optimiser are the "
        "seed's fit, continued on the slab's rows); restart: a fresh Adam from the seed's weights (the paper).",
    )
    seed_iterations: int = Field(2000, ge=1, le=1000000, description="Iterations of the seed slab (random init).")
    seed_lr_start: float = Field(1e-3, gt=0.0, le=1.0, description="Seed slab: learning rate at the first step.")
    seed_lr_end: float = Field(1e-4, gt=0.0, le=1.0, description="Seed slab: learning rate at the last step (log decay).")
    slab_iterations: int = Field(400, ge=1, le=1000000, description="Iterations of every slab from learned init.")
    slab_lr_start: float = Field(1e-4, gt=0.0, le=1.0, description="Slabs: learning rate at the first step.")
    slab_lr_end: float = Field(1e-5, gt=0.0, le=1.0, description="Slabs: learning rate at the last step (log decay).")
    rows_per_step: int | None = Field(
        None, ge=1, description="Random rows of the slab window per step (CPU speed-up); empty = all rows (paper)."
    )
    slab_rows_per_step: int | None = Field(
        None, ge=1, description="Random rows per step of every slab fit (fit_slab); empty = rows_per_step. With N "
        "slabs, rows_per_step / N keeps one network's step count and row visits while each job does 1/N of the work "
        "(bench cn_slabs: on a CPU, 1 row per step with N x the steps matched one network at equal compute)."
    )
    keep_measured: bool = Field(
        False,
        description="Data consistency: put the measured Fourier region (the acquired tilts' planes) of the slab's "
        "weighted back-projection back into its volume, as CryoGEN's keep_measured; the measured region is then the "
        "data's (noise included), the network's fill of the missing region stays.",
    )
    seed: int = Field(0, ge=0, description="Seed of the network initialisation and row sampling.")

    @property
    def slab_fit_rows_per_step(self) -> int | None:
        """Rows per step of a slab fit: ``slab_rows_per_step``, else ``rows_per_step`` (None = all rows)."""
        return self.rows_per_step if self.slab_rows_per_step is None else self.slab_rows_per_step

    @field_validator("slab_px", mode="before")
    @classmethod
    def _slab_px_or_all(cls, value):
        """One clear error for the union (a positive number of rows, 'all' or empty)."""
        if value is None or value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("allowed: a number of rows >= 1, 'all' (one network) or empty (the ratio)")

    @field_validator("nonnegative", mode="before")
    @classmethod
    def _bool_or_auto(cls, value):
        """One clear error for the union (true, false or 'auto')."""
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError("allowed: true, false or 'auto'")


class StitchConfig(StageConfig):
    """``stitch_slabs``: blend the slab windows in y into one volume (Zarr, MRC, OME-Zarr) in one pass."""

    chunk_px: int = Field(64, ge=8, le=1024, description="Edge of the output Zarr chunks (a region task writes one "
                          "chunk layer in z).")
