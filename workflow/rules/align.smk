# Real data where it lives: CryoET Data Portal rows fetched by id, raw tilt series aligned and their
# tilt axis brought onto y (everything downstream expects that), RELION-5 hand-off of the results.


localrules:
    fetch_portal_tiltseries,
    fetch_portal_tomogram,
    export_relion,


rule fetch_portal_tiltseries:
    """Resolve a portal row's id (raw tilt series) with the portal client; download stack, angles, alignment."""
    output:
        tilt_series="resources/{dataset}/tilt_series.mrc",
        angles="resources/{dataset}/angles.tlt",
        alignment="resources/{dataset}/alignment.json",
        record="resources/{dataset}/portal.json",
    params:
        dataset=portal_row_json("fetch_portal_tiltseries"),
    wildcard_constraints:
        dataset=portal_datasets("tiltseries"),
    log:
        "logs/fetch_portal/{dataset}.log",
    shell:
        """
        cryo-pipeline fetch-portal --dataset-json {params.dataset:q} --folder resources/{wildcards.dataset:q} \
            > {log:q} 2>&1
        """


rule fetch_portal_tomogram:
    """Resolve a portal row's id (tomogram) with the portal client; download the tomogram."""
    output:
        tomogram="resources/{dataset}/tomogram.mrc",
        record="resources/{dataset}/portal.json",
    params:
        dataset=portal_row_json("fetch_portal_tomogram"),
    wildcard_constraints:
        dataset=portal_datasets("tomogram"),
    log:
        "logs/fetch_portal/{dataset}.log",
    shell:
        """
        cryo-pipeline fetch-portal --dataset-json {params.dataset:q} --folder resources/{wildcards.dataset:q} \
            > {log:q} 2>&1
        """


rule align_tilt_series:
    """Raw tilt series -> aligned, tilt axis on y (tilt_axis_deg or the alignment file), one interpolation."""
    input:
        unpack(raw_tilt_series_inputs),
    output:
        tilt_series="results/{run}/{dataset}/aligned/tilt_series.mrc",
        angles="results/{run}/{dataset}/aligned/tilt_series.tlt",
        meta="results/{run}/{dataset}/aligned/tilt_series.json",
    params:
        dataset=sheet_row("align_tilt_series"),
        config=stage_config("align_tilt_series"),
        angles=optional_input("angles"),
        alignment=optional_input("alignment"),
    log:
        "logs/{run}/align_tilt_series/{dataset}.log",
    benchmark:
        "benchmarks/{run}/align_tilt_series/{dataset}.tsv"
    shell:
        """
        cryo-pipeline align-tilt-series --tilt-series {input.tilt_series:q} --angles={params.angles:q} \
            --alignment={params.alignment:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out {output.tilt_series:q} --angles-out {output.angles:q} > {log:q} 2>&1
        """


rule export_relion:
    """RELION-5 tomograms.star listing every dataset's tomogram corrected by {method}."""
    input:
        volumes=relion_volumes,
    output:
        star="results/{run}/relion/tomograms_{method}.star",
    params:
        rows=relion_arguments,
    wildcard_constraints:
        method=wildcard_pattern(CORRECTED_METHODS),
    log:
        "logs/{run}/export_relion/{method}.log",
    shell:
        """
        cryo-pipeline export-relion {params.rows} --out {output.star:q} > {log:q} 2>&1
        """
