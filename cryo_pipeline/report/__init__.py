"""HTML report of a run, one idea per module.

* :mod:`.metrics_table` reads ``metrics.tsv`` (or the per-method tables of a partial run);
  :mod:`.methods` fixes the method order and colours.
* :mod:`.figures` (volumes: orthoslices, Fourier slices, FSC), :mod:`.losses`,
  :mod:`.preprocess` (mask overlay) and :mod:`.dataset` build one dataset's section.
* :mod:`.summary`, :mod:`.sweep` (gains over the corrupted input), :mod:`.ablation`
  (metric against a swept acquisition parameter), :mod:`.failures` (missing results and
  their logs), :mod:`.runtimes` (Snakemake benchmark files) and :mod:`.records` (stage
  records: hardware, CN slabs) build the run-level sections.
* :mod:`.html` renders them with jinja2 into one self-contained file.

The ``report`` stage (:mod:`cryo_pipeline.stages.report`) composes them.
"""
