"""cryo_pipeline.cli."""
