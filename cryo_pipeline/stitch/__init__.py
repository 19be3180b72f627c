"""cryo_pipeline.stitch."""
