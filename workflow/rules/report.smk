# The run's self-contained HTML report.


rule report:
    """Metrics table, orthogonal and Fourier slices, FSC curves, config: one offline HTML file."""
    input:
        metrics="results/{run}/metrics.tsv",
        preprocess=preprocess_records,
        losses=loss_tables,
    output:
        html="results/{run}/report.html",
    params:
        pipeline_config=pipeline_config_json,
    log:
        "logs/{run}/report.log",
    benchmark:
        "benchmarks/{run}/report.tsv"
    shell:
        """
        cryo-pipeline report --metrics {input.metrics:q} --run-name {wildcards.run:q} \
            --preprocess {input.preprocess:q} --losses {input.losses:q} --pipeline-config-json {params.pipeline_config:q} \
            --out {output.html:q} > {log:q} 2>&1
        """
