# Front half of the CryoGEN/IsoNet path: bin -> CTF-deconvolve -> density mask -> subtomograms.
# Runs for tomogram datasets and for rows asking for isonet or cryogen; its input is the
# dataset's "corrupted" volume (the tomogram, the WBP, or the Fourier-wedged volume).


rule bin_tomogram:
    """Anti-aliased binning by Fourier cropping; the header voxel size follows the factor."""
    input:
        tomogram=preprocess_source,
    output:
        tomogram="results/{run}/{dataset}/preprocess/binned.mrc",
        meta="results/{run}/{dataset}/preprocess/binned.json",
    params:
        dataset=sheet_row("bin_tomogram"),
        config=stage_config("bin_tomogram"),
    log:
        "logs/{run}/bin_tomogram/{dataset}.log",
    benchmark:
        "benchmarks/{run}/bin_tomogram/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} bin-tomogram --tomogram {input.tomogram:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out {output.tomogram:q} > {log:q} 2>&1
        """


rule deconvolve_tomogram:
    """IsoNet-equivalent Wiener-like CTF deconvolution (only where the sheet gives a defocus)."""
    input:
        tomogram="results/{run}/{dataset}/preprocess/binned.mrc",
    output:
        tomogram="results/{run}/{dataset}/preprocess/deconvolved.mrc",
        meta="results/{run}/{dataset}/preprocess/deconvolved.json",
    params:
        dataset=sheet_row("deconvolve_tomogram"),
        config=stage_config("deconvolve_tomogram"),
    log:
        "logs/{run}/deconvolve_tomogram/{dataset}.log",
    benchmark:
        "benchmarks/{run}/deconvolve_tomogram/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} deconvolve-tomogram --tomogram {input.tomogram:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out {output.tomogram:q} > {log:q} 2>&1
        """


rule make_mask:
    """Density mask (local-max density ∩ local std, z crop, optional user mask)."""
    input:
        unpack(mask_inputs),
    output:
        mask="results/{run}/{dataset}/preprocess/mask.mrc",
        meta="results/{run}/{dataset}/preprocess/mask.json",
    params:
        dataset=sheet_row("make_mask"),
        config=stage_config("make_mask"),
        user_mask=optional_input("user_mask"),
    log:
        "logs/{run}/make_mask/{dataset}.log",
    benchmark:
        "benchmarks/{run}/make_mask/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} make-mask --tomogram {input.tomogram:q} \
            --user-mask={params.user_mask:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out {output.mask:q} > {log:q} 2>&1
        """


rule extract_subtomos:
    """Subtomograms inside the mask (≥ min_mask_fraction) into one Zarr v3 store per tomogram."""
    input:
        unpack(extraction_inputs),
    output:
        store=directory("results/{run}/{dataset}/preprocess/subtomos.zarr"),
        table="results/{run}/{dataset}/preprocess/subtomos.tsv",
        meta="results/{run}/{dataset}/preprocess/subtomos.json",
    params:
        dataset=sheet_row("extract_subtomos"),
        config=stage_config("extract_subtomos"),
    log:
        "logs/{run}/extract_subtomos/{dataset}.log",
    benchmark:
        "benchmarks/{run}/extract_subtomos/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} extract-subtomos --tomogram {input.tomogram:q} \
            --mask {input.mask:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --out-store {output.store:q} --out-table {output.table:q} > {log:q} 2>&1
        """
