# Coordinate networks (CN): one SIREN per y-slab of the tilt series, fitted against its
# projections. plan_slabs is a checkpoint: the number of fit_slab jobs (one per slab, each
# its own SLURM job) is known once the plan exists. Every fit_slab starts from the seed
# slab's weights (cn.schedule: seed, all in parallel) or from its neighbour towards the
# middle (chain, the paper's order). stitch_slabs blends the slabs in y with Dask.

checkpoint plan_slabs:
    """Read the tilt series header: volume shape, tilts in range, slab windows, output amplitude."""
    input:
        unpack(tilt_series_inputs),
    output:
        plan="results/{run}/{dataset}/cn/slabs.json",
    params:
        dataset=sheet_row("plan_slabs"),
        config=stage_config("plan_slabs"),
        reference=reference_volume,
    log:
        "logs/{run}/plan_slabs/{dataset}.log",
    shell:
        """
        cryo-pipeline plan-slabs --tilt-series {input.tilt_series:q} --angles {input.angles:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --reference-volume={params.reference:q} --out {output.plan:q} > {log:q} 2>&1
        """


rule fit_slab_seed:
    """Fit the middle slab from random initialisation (cn.seed_iterations); its weights start every slab."""
    input:
        tilt_series=cn_tilt_series,
        plan="results/{run}/{dataset}/cn/slabs.json",
    output:
        model="results/{run}/{dataset}/cn/seed/model.pt",
        meta="results/{run}/{dataset}/cn/seed/model.json",
    params:
        dataset=sheet_row("fit_slab_seed"),
        config=stage_config("fit_slab_seed"),
    log:
        "logs/{run}/fit_slab_seed/{dataset}.log",
    benchmark:
        "benchmarks/{run}/fit_slab_seed/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} fit-slab-seed --tilt-series {input.tilt_series:q} \
            --plan {input.plan:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
            --execution-json {EXECUTION_JSON:q} --out-model {output.model:q} > {log:q} 2>&1
        """


rule fit_slab:
    """Fit one slab's window from learned initialisation (cn.slab_iterations) into its own tile store."""
    input:
        tilt_series=cn_tilt_series,
        plan="results/{run}/{dataset}/cn/slabs.json",
        init=slab_init_model,
        seed_meta="results/{run}/{dataset}/cn/seed/model.json",
    output:
        tiles=directory("results/{run}/{dataset}/cn/slabs/slab_{slab}.zarr"),
        model="results/{run}/{dataset}/cn/slabs/slab_{slab}.pt",
        meta="results/{run}/{dataset}/cn/slabs/slab_{slab}.json",
    wildcard_constraints:
        slab=r"\d+",
    params:
        dataset=sheet_row("fit_slab"),
        config=stage_config("fit_slab"),
    log:
        "logs/{run}/fit_slab/{dataset}.{slab}.log",
    benchmark:
        "benchmarks/{run}/fit_slab/{dataset}.{slab}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} fit-slab --tilt-series {input.tilt_series:q} --plan {input.plan:q} \
            --slab {wildcards.slab:q} --init-model {input.init:q} --seed-meta {input.seed_meta:q} \
            --dataset-json {params.dataset:q} --config-json {params.config:q} --execution-json {EXECUTION_JSON:q} \
            --out-tiles {output.tiles:q} --out-model {output.model:q} > {log:q} 2>&1
        """


rule stitch_slabs:
    """Blend the slabs in y with Dask (local cluster of the rule's threads, or execution.stitch_cluster): Zarr, MRC."""
    input:
        unpack(slab_outputs),
        plan="results/{run}/{dataset}/cn/slabs.json",
    output:
        volume="results/{run}/{dataset}/cn/volume.mrc",
        ome_zarr=directory("results/{run}/{dataset}/cn/volume.ome.zarr"),
        zarr=directory("results/{run}/{dataset}/cn/volume.zarr"),
        meta="results/{run}/{dataset}/cn/volume.json",
    params:
        config=stage_config("stitch_slabs"),
    log:
        "logs/{run}/stitch_slabs/{dataset}.log",
    benchmark:
        "benchmarks/{run}/stitch_slabs/{dataset}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} stitch-slabs --plan {input.plan:q} \
            --config-json {params.config:q} --execution-json {EXECUTION_JSON:q} \
            --out {output.volume:q} --out-zarr {output.zarr:q} > {log:q} 2>&1
        """
