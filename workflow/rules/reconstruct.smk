# Reconstruction from a tilt series: weighted back-projection (the baseline).


rule reconstruct_wbp:
    """Weighted back-projection of the tilts inside the sheet's range."""
    input:
        unpack(tilt_series_inputs),
    output:
        volume="results/{run}/{dataset}/wbp/volume.mrc",
        ome_zarr=directory("results/{run}/{dataset}/wbp/volume.ome.zarr"),
        meta="results/{run}/{dataset}/wbp/volume.json",
    params:
        dataset=sheet_row("reconstruct_wbp"),
        config=stage_config("reconstruct_wbp"),
        reference=reference_volume,
    log:
        "logs/{run}/reconstruct_wbp/{dataset}.log",
    benchmark:
        "benchmarks/{run}/reconstruct_wbp/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} reconstruct-wbp --tilt-series {input.tilt_series:q} --angles {input.angles:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --reference-volume={params.reference:q} --out {output.volume:q} > {log:q} 2>&1
        """
