# Validation without ground truth (issue 12): the full-range reference of a row with a reference
# range, and the even/odd halves of a row with halves. Each half is then a dataset of its own
# (<dataset>__even, <dataset>__odd; common.smk), so every method's rules run on it unchanged;
# evaluate scores the whole series' output against the reference and the two halves' outputs
# against each other.


rule reconstruct_reference:
    """Reconstruct every tilt of the reference range (WBP or non-negative SIRT) on the dataset's WBP grid."""
    input:
        unpack(tilt_series_inputs),
        grid="results/{run}/{dataset}/wbp/volume.mrc",
    output:
        volume="results/{run}/{dataset}/reference/volume.mrc",
        meta="results/{run}/{dataset}/reference/volume.json",
    params:
        dataset=sheet_row("reconstruct_reference"),
        config=stage_config("reconstruct_reference"),
    log:
        "logs/{run}/reconstruct_reference/{dataset}.log",
    benchmark:
        "benchmarks/{run}/reconstruct_reference/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} reconstruct-reference --tilt-series {input.tilt_series:q} \
            --angles {input.angles:q} --grid-volume {input.grid:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out {output.volume:q} > {log:q} 2>&1
        """


rule split_halves:
    """Split the working tilts into even and odd halves (alternating in angle), each its own tilt series."""
    input:
        unpack(tilt_series_inputs),
    output:
        even="results/{run}/{dataset}/halves/even.mrc",
        even_angles="results/{run}/{dataset}/halves/even.tlt",
        odd="results/{run}/{dataset}/halves/odd.mrc",
        odd_angles="results/{run}/{dataset}/halves/odd.tlt",
        meta="results/{run}/{dataset}/halves/even.json",
    params:
        dataset=sheet_row("split_halves"),
    log:
        "logs/{run}/split_halves/{dataset}.log",
    shell:
        """
        cryo-pipeline split-halves --tilt-series {input.tilt_series:q} --angles {input.angles:q} \
            --dataset-json {params.dataset:q} --out-even {output.even:q} --angles-even-out {output.even_angles:q} \
            --out-odd {output.odd:q} --angles-odd-out {output.odd_angles:q} > {log:q} 2>&1
        """
