# The run's self-contained HTML report and its sweep summary; and, when a job failed, a partial
# report of what finished (the onerror handler below).
#
# Failing datasets: with `snakemake --keep-going` every job that does not depend on a failed one
# still runs, but rule report needs every dataset's metrics, so it cannot run. Snakemake then calls
# onerror, which runs `cryo-pipeline report` without --metrics: the report is built from the
# per-(dataset, method) tables that exist and lists the missing ones as failed with their log path.
# Snakemake still exits non-zero. The partial report is results/<run>/report.partial.html (never
# report.html, so the next run still sees what is missing). After fixing the cause, the next run
# redoes only what is missing, and rule report writes report.html and removes the partial one.


report: "../report/workflow.rst"


rule report:
    """Summary, failures, sweep and ablation plots, runtimes, per-dataset figures, config: one offline HTML file."""
    input:
        metrics="results/{run}/metrics.tsv",
        tables=all_metric_tables,
        sheet=dataset_sheet,
        preprocess=preprocess_records,
        losses=loss_tables,
    output:
        html=report("results/{run}/report.html", caption="../report/report.rst", category="Report"),
        sweep=report(
            "results/{run}/sweep_summary.tsv", caption="../report/sweep_summary.rst", category="Sweep summary"
        ),
        sweep_plot=report(
            "results/{run}/sweep_summary.png", caption="../report/sweep_plot.rst", category="Sweep summary"
        ),
    params:
        pipeline_config=science_config_json,
        partial="results/{run}/report.partial.html",
        logs="logs/{run}",
        benchmarks="benchmarks/{run}",
    log:
        "logs/{run}/report.log",
    benchmark:
        "benchmarks/{run}/report.tsv"
    shell:
        """
        cryo-pipeline report --metrics {input.metrics:q} --run-name {wildcards.run:q} --sheet {input.sheet:q} \
            --expected-tables {input.tables:q} --preprocess {input.preprocess:q} --losses {input.losses:q} \
            --logs-dir {params.logs:q} --benchmarks-dir {params.benchmarks:q} \
            --pipeline-config-json {params.pipeline_config:q} \
            --out {output.html:q} --sweep-tsv {output.sweep:q} --sweep-png {output.sweep_plot:q} > {log:q} 2>&1
        rm -f {params.partial:q}
        """


onerror:
    write_partial_report(log)
