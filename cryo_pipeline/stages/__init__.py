"""cryo_pipeline.stages."""
