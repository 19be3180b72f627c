"""Batches of normalised random crops from a subtomogram store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryo_pipeline.io.subtomo_store import open_subtomo_store
from cryo_pipeline.io.tables import read_subtomo_table


class SubtomoBatches:
    """Draw ``(b, 1, c, c, c)`` crops of the training cubes, normalised by the whole tomogram.

    The training cubes are loaded once (they are small: n × s³ float32). Each draw picks
    cubes uniformly and a uniform crop offset inside each; the generator makes the
    sequence reproducible and its state is checkpointed.

    Parameters
    ----------
    store : Path
        ``subtomos.zarr`` from ``extract_subtomos``.
    table : Path, optional
        ``subtomos.tsv``; when given, only the rows with ``split == "train"`` are used.
    crop_px : int
        Crop edge (≤ the stored cube edge).
    """

    def __init__(self, store: Path, *, crop_px: int, table: Path | None = None) -> None:
        array, attrs = open_subtomo_store(store)
        self.store = Path(store)
        self.attrs = attrs
        cube_px = int(attrs["cube_size_px"])
        if crop_px > cube_px:
            raise ValueError(
                f"train.crop_px ({crop_px}) is larger than the stored cubes ({cube_px}) in {store}; "
                f"lower train.crop_px or extract larger cubes (extract.cube_size_px)"
            )
        indices = np.arange(array.shape[0])
        if table is not None:
            split = read_subtomo_table(table)["split"].to_numpy()
            if split.size != array.shape[0]:
                raise ValueError(f"{table} lists {split.size} cubes but {store} holds {array.shape[0]}")
            indices = np.flatnonzero(split == "train")
        if indices.size == 0:
            raise ValueError(f"{store} has no training cubes; lower extract.validation_fraction")
        norm = attrs["normalization"]
        mean, std = float(norm["mean"]), float(norm["std"])
        if not std > 0:
            raise ValueError(f"{store}: tomogram std is {std}; the tomogram is constant")
        self.normalization = (mean, std)
        self.cubes = torch.from_numpy((np.asarray(array[indices.tolist()], dtype=np.float32) - mean) / std)
        self.crop_px = crop_px
        self.tilt_range_deg = (float(attrs["tilt_min_deg"]), float(attrs["tilt_max_deg"]))

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
