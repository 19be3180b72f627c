# Synthetic data: ground truth, and its two corruptions (Fourier wedge; tilt series).


rule simulate_volume:
    """Ground truth of a synthetic dataset: a phantom or a (rotated) real map."""
    output:
        volume="results/{run}/{dataset}/ground_truth.mrc",
        meta="results/{run}/{dataset}/ground_truth.json",
    params:
        dataset=sheet_row("simulate_volume"),
        config=stage_config("simulate_volume"),
    log:
        "logs/{run}/simulate_volume/{dataset}.log",
    benchmark:
        "benchmarks/{run}/simulate_volume/{dataset}.tsv"
    shell:
        """
        cryo-pipeline simulate-volume --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out {output.volume:q} > {log:q} 2>&1
        """


rule apply_fourier_wedge:
    """Zero the missing wedge of the ground truth (the CryoGEN paper's corruption)."""
    input:
        volume="results/{run}/{dataset}/ground_truth.mrc",
    output:
        volume="results/{run}/{dataset}/fourier_wedged.mrc",
        meta="results/{run}/{dataset}/fourier_wedged.json",
    params:
        dataset=sheet_row("apply_fourier_wedge"),
        config=stage_config("apply_fourier_wedge"),
    log:
        "logs/{run}/apply_fourier_wedge/{dataset}.log",
    shell:
        """
        cryo-pipeline apply-fourier-wedge --volume {input.volume:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out {output.volume:q} > {log:q} 2>&1
        """


rule project_tilt_series:
    """Project the ground truth at the sheet's tilts and add noise (the CN paper's corruption)."""
    input:
        volume="results/{run}/{dataset}/ground_truth.mrc",
    output:
        tilt_series="results/{run}/{dataset}/tilt_series.mrc",
        angles="results/{run}/{dataset}/tilt_series.tlt",
        meta="results/{run}/{dataset}/tilt_series.json",
    params:
        dataset=sheet_row("project_tilt_series"),
        config=stage_config("project_tilt_series"),
    log:
        "logs/{run}/project_tilt_series/{dataset}.log",
    benchmark:
        "benchmarks/{run}/project_tilt_series/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} project-tilt-series --volume {input.volume:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out {output.tilt_series:q} \
            --angles-out {output.angles:q} > {log:q} 2>&1
        """
