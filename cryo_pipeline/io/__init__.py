"""The only code that knows file formats: MRC, tilt angles, Zarr stores, tables."""
