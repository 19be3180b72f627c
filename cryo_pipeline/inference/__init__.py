"""cryo_pipeline.inference: run trained networks over whole tomograms (tiled, blended, streamed).

One job: :func:`predict_tiled` (blended in place). Split into N jobs: :func:`predict_tile_group`
per group of tiles (unblended), then :mod:`cryo_pipeline.stitch.dask_blend`.
"""

from __future__ import annotations

from cryo_pipeline.inference.tile_groups import predict_tile_group, tile_group
from cryo_pipeline.inference.tiled import predict_tiled, predict_tiled_to_zarr, volume_statistics

__all__ = ["predict_tile_group", "predict_tiled", "predict_tiled_to_zarr", "tile_group", "volume_statistics"]
