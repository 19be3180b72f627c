"""cryo_pipeline.inference: run trained networks over whole tomograms (tiled, blended, streamed)."""

from __future__ import annotations

from cryo_pipeline.inference.tiled import predict_tiled, predict_tiled_to_zarr, volume_statistics

__all__ = ["predict_tiled", "predict_tiled_to_zarr", "volume_statistics"]
