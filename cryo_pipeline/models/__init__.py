"""cryo_pipeline.models."""
