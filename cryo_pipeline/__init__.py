"""cryo_pipeline: missing-wedge correction of cryo-electron tomograms.

The package holds pure kernels (:mod:`cryo_pipeline.ops`), file formats
(:mod:`cryo_pipeline.io`), stage configs (:mod:`cryo_pipeline.config`), one stage
per CLI command (:mod:`cryo_pipeline.stages`) and the ``cryo-pipeline`` command
(:mod:`cryo_pipeline.cli`). It never imports Snakemake; the workflow calls the CLI.
"""

__version__ = "0.1.0"
