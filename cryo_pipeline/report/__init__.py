"""HTML report of a run: figures (:mod:`.figures`) and rendering (:mod:`.html`).

The ``report`` stage (:mod:`cryo_pipeline.stages.report`) reads ``metrics.tsv``,
builds the figures dataset by dataset and writes one self-contained HTML file.
"""
