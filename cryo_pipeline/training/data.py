"""Batches of normalised random crops of training subtomograms (pure: the stage reads the store)."""

from __future__ import annotations

import numpy as np
import torch


class SubtomoBatches:
    """Draw ``(b, 1, c, c, c)`` crops of the training cubes, normalised by the whole tomogram.

    The training cubes are held in memory (they are small: n × s³ float32). Each draw
    picks cubes uniformly and a uniform crop offset inside each; the generator makes the
    sequence reproducible and its state is checkpointed.

    Parameters
    ----------
    cubes : `(n, s, s, s)` array
        The training cubes as stored (raw values), e.g. from
        :func:`cryo_pipeline.io.subtomo_store.read_training_cubes`.
    normalization : (float, float)
        Mean and std of the whole tomogram.
    crop_px : int
        Crop edge (≤ the stored cube edge ``s``).
    source : str
        Where the cubes come from, for messages.
    """

    def __init__(self, cubes: np.ndarray, *, normalization: tuple[float, float], crop_px: int,
                 source: str = "the subtomogram store") -> None:
        cube_px = int(cubes.shape[-1])
        if crop_px > cube_px:
            raise ValueError(
                f"train.crop_px ({crop_px}) is larger than the stored cubes ({cube_px}) in {source}; "
                f"lower train.crop_px or extract larger cubes (extract.cube_size_px)"
            )
        if len(cubes) == 0:
            raise ValueError(f"{source} has no training cubes; lower extract.validation_fraction")
        mean, std = float(normalization[0]), float(normalization[1])
        if not std > 0:
            raise ValueError(f"{source}: tomogram std is {std}; the tomogram is constant")
        self.normalization = (mean, std)
        self.cubes = torch.from_numpy((np.asarray(cubes, dtype=np.float32) - mean) / std)
        self.crop_px = crop_px

    @property
    def n_cubes(self) -> int:
        """Number of training cubes."""
        return int(self.cubes.shape[0])

    def draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch_size, 1, c, c, c)`` float32 crops (CPU)."""
        cube_px, crop = self.cubes.shape[-1], self.crop_px
        picks = torch.randint(self.n_cubes, (batch_size,), generator=generator)
        offsets = torch.randint(cube_px - crop + 1, (batch_size, 3), generator=generator)
        crops = [
            self.cubes[i, z : z + crop, y : y + crop, x : x + crop]
            for i, (z, y, x) in zip(picks.tolist(), offsets.tolist(), strict=True)
        ]
        return torch.stack(crops)[:, None].contiguous()
