# Scoring: one metrics row per (dataset, method), then one table per run.


rule evaluate:
    """Metrics of one method's volume (reference-based when the ground truth is known)."""
    input:
        unpack(evaluation_inputs),
    output:
        table="results/{run}/{dataset}/{method}/metrics.tsv",
        curves="results/{run}/{dataset}/{method}/fsc_curves.json",
    params:
        dataset=sheet_row("evaluate"),
        config=stage_config("evaluate"),
        ground_truth=optional_input("ground_truth"),
        meta=optional_input("meta"),
    log:
        "logs/{run}/evaluate/{dataset}.{method}.log",
    benchmark:
        "benchmarks/{run}/evaluate/{dataset}.{method}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} evaluate --volume {input.volume:q} --method {wildcards.method:q} \
            --ground-truth={params.ground_truth:q} --meta={params.meta:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out {output.table:q} --curves-out {output.curves:q} > {log:q} 2>&1
        """


rule collect_metrics:
    """All metric rows of a run in one table: results/<run>/metrics.tsv."""
    input:
        all_metric_tables,
    output:
        table="results/{run}/metrics.tsv",
    log:
        "logs/{run}/collect_metrics.log",
    shell:
        """
        cryo-pipeline collect-metrics --inputs {input:q} --out {output.table:q} > {log:q} 2>&1
        """
