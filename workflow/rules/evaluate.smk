# Scoring: one metrics row per (dataset, method), then one table per run.


rule evaluate:
    """Metrics of one method's volume: against the ground truth (or the full-range reference), and the
    validation scores without ground truth (held-out band, held-out tilts, half maps, fidelity, isotropy)."""
    input:
        unpack(evaluation_inputs),
    output:
        table="results/{run}/{dataset}/{method}/metrics.tsv",
        curves="results/{run}/{dataset}/{method}/fsc_curves.json",
        heldout="results/{run}/{dataset}/{method}/heldout_tilts.tsv",
    params:
        dataset=sheet_row("evaluate"),
        config=stage_config("evaluate"),
        ground_truth=optional_input("ground_truth"),
        meta=optional_input("meta"),
        reference=optional_input("reference"),
        tilt_series=optional_input("tilt_series"),
        angles=optional_input("angles"),
        half_even=optional_input("half_even"),
        half_odd=optional_input("half_odd"),
        method_input=optional_input("method_input"),
    log:
        "logs/{run}/evaluate/{dataset}.{method}.log",
    benchmark:
        "benchmarks/{run}/evaluate/{dataset}.{method}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} evaluate --volume {input.volume:q} --method {wildcards.method:q} \
            --ground-truth={params.ground_truth:q} --meta={params.meta:q} \
            --reference={params.reference:q} --tilt-series={params.tilt_series:q} --angles={params.angles:q} \
            --half-even={params.half_even:q} --half-odd={params.half_odd:q} --method-input={params.method_input:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out {output.table:q} --curves-out {output.curves:q} --heldout-out {output.heldout:q} > {log:q} 2>&1
        """


rule collect_metrics:
    """All metric rows of a run in one table: results/<run>/metrics.tsv (and the held-out tilts' side table)."""
    input:
        tables=all_metric_tables,
        heldout=heldout_tables,
    output:
        table="results/{run}/metrics.tsv",
        heldout="results/{run}/heldout_tilts.tsv",
    log:
        "logs/{run}/collect_metrics.log",
    shell:
        """
        cryo-pipeline collect-metrics --inputs {input.tables:q} --heldout-inputs {input.heldout:q} \
            --out {output.table:q} --heldout-out {output.heldout:q} > {log:q} 2>&1
        """
