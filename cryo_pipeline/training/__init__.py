"""cryo_pipeline.training."""
