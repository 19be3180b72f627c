# CryoGEN and the IsoNet-style baseline: train on the subtomograms, then tiled inference.
# Both methods share these rules ({method} is cryogen or isonet) and the train/predict config.
# Inference runs as one predict_cryogen job (execution.predict_n_jobs: 1), or split into N
# predict_cryogen_tiles jobs over groups of tiles plus one stitch_cryogen job (Dask) with the
# same outputs; only the rules of the configured mode are defined, so they never compete.
# The device (execution.device) reaches the commands as --execution-json, never as a param.


rule train_cryogen:
    """Train the generator on the dataset's subtomograms (epoch checkpoints; a rerun resumes)."""
    input:
        store="results/{run}/{dataset}/preprocess/subtomos.zarr",
        table="results/{run}/{dataset}/preprocess/subtomos.tsv",
    output:
        model="results/{run}/{dataset}/{method}/model.pt",
        losses="results/{run}/{dataset}/{method}/losses.tsv",
        meta="results/{run}/{dataset}/{method}/model.json",
    wildcard_constraints:
        method=TRAINED,
    params:
        dataset=sheet_row("train_cryogen"),
        config=stage_config("train_cryogen"),
        checkpoints=checkpoint_dir,
    log:
        "logs/{run}/train_cryogen/{dataset}.{method}.log",
    benchmark:
        "benchmarks/{run}/train_cryogen/{dataset}.{method}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} train-cryogen --method {wildcards.method:q} \
            --store {input.store:q} --table {input.table:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --execution-json {EXECUTION_JSON:q} --out-model {output.model:q} --out-losses {output.losses:q} \
            --checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1
        """


if CFG.execution.predict_n_jobs == 1:

    rule predict_cryogen:
        """Tiled, overlapping, blended inference on the preprocessed tomogram (Zarr, then MRC)."""
        input:
            tomogram=preprocessed_tomogram,
            model="results/{run}/{dataset}/{method}/model.pt",
        output:
            volume="results/{run}/{dataset}/{method}/volume.mrc",
            ome_zarr=directory("results/{run}/{dataset}/{method}/volume.ome.zarr"),
            zarr=directory("results/{run}/{dataset}/{method}/volume.zarr"),
            meta="results/{run}/{dataset}/{method}/volume.json",
        wildcard_constraints:
            method=TRAINED,
        params:
            dataset=sheet_row("predict_cryogen"),
            config=stage_config("predict_cryogen"),
        log:
            "logs/{run}/predict_cryogen/{dataset}.{method}.log",
        benchmark:
            "benchmarks/{run}/predict_cryogen/{dataset}.{method}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} predict-cryogen --tomogram {input.tomogram:q} \
                --model {input.model:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
                --execution-json {EXECUTION_JSON:q} --out {output.volume:q} --out-zarr {output.zarr:q} > {log:q} 2>&1
            """

else:

    rule predict_cryogen_tiles:
        """Predict one of the execution.predict_n_jobs groups of tiles (unblended) into its own tile store."""
        input:
            tomogram=preprocessed_tomogram,
            model="results/{run}/{dataset}/{method}/model.pt",
        output:
            tiles=directory("results/{run}/{dataset}/{method}/tiles/of_{n_groups}/group_{group}.zarr"),
            meta="results/{run}/{dataset}/{method}/tiles/of_{n_groups}/group_{group}.json",
        wildcard_constraints:
            method=TRAINED,
            group=r"\d+",
            n_groups=r"\d+",
        params:
            dataset=sheet_row("predict_cryogen_tiles"),
            config=stage_config("predict_cryogen_tiles"),
        log:
            "logs/{run}/predict_cryogen_tiles/{dataset}.{method}.{group}_of_{n_groups}.log",
        benchmark:
            "benchmarks/{run}/predict_cryogen_tiles/{dataset}.{method}.{group}_of_{n_groups}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} predict-cryogen-tiles --tomogram {input.tomogram:q} \
                --model {input.model:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
                --execution-json {EXECUTION_JSON:q} --group {wildcards.group:q} --n-groups {wildcards.n_groups:q} \
                --out-tiles {output.tiles:q} > {log:q} 2>&1
            """

    rule stitch_cryogen:
        """Blend the tile stores of all groups with Dask (one worker process per thread): Zarr, then MRC."""
        input:
            unpack(tile_group_outputs),
        output:
            volume="results/{run}/{dataset}/{method}/volume.mrc",
            ome_zarr=directory("results/{run}/{dataset}/{method}/volume.ome.zarr"),
            zarr=directory("results/{run}/{dataset}/{method}/volume.zarr"),
            meta="results/{run}/{dataset}/{method}/volume.json",
        wildcard_constraints:
            method=TRAINED,
        log:
            "logs/{run}/stitch_cryogen/{dataset}.{method}.log",
        benchmark:
            "benchmarks/{run}/stitch_cryogen/{dataset}.{method}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} stitch-tiles --tile-stores {input.tiles:q} --meta {input.meta:q} \
                --execution-json {EXECUTION_JSON:q} --out {output.volume:q} --out-zarr {output.zarr:q} > {log:q} 2>&1
            """
