# CryoGEN and the IsoNet-style baseline: train on the subtomograms, then tiled inference.
# Both methods share these rules ({method} is cryogen or isonet) and the train/predict config.
# Inference runs as one predict_cryogen job (predict.n_jobs: 1), or split into N
# predict_cryogen_tiles jobs over groups of tiles plus one stitch_cryogen job (Dask) with the
# same outputs; only the rules of the configured mode are defined, so they never compete.


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
        method="cryogen|isonet",
    params:
        dataset=dataset_json,
        config=stage_json("train"),
        checkpoints=checkpoint_dir,
    log:
        "logs/{run}/train_cryogen/{dataset}.{method}.log",
    benchmark:
        "benchmarks/{run}/train_cryogen/{dataset}.{method}.tsv"
    shell:
        """
        cryo-pipeline --threads {threads} train-cryogen --method {wildcards.method:q} \
            --store {input.store:q} --table {input.table:q} --dataset-json {params.dataset:q} \
            --config-json {params.config:q} --out-model {output.model:q} --out-losses {output.losses:q} \
            --checkpoint-dir {params.checkpoints:q} > {log:q} 2>&1
        """


if CFG.predict.n_jobs == 1:

    rule predict_cryogen:
        """Tiled, overlapping, blended inference on the preprocessed tomogram (Zarr, then MRC)."""
        input:
            tomogram=preprocessed_tomogram,
            model="results/{run}/{dataset}/{method}/model.pt",
        output:
            volume="results/{run}/{dataset}/{method}/volume.mrc",
            zarr=directory("results/{run}/{dataset}/{method}/volume.zarr"),
            meta="results/{run}/{dataset}/{method}/volume.json",
        wildcard_constraints:
            method="cryogen|isonet",
        params:
            dataset=dataset_json,
            config=stage_json("predict"),
        log:
            "logs/{run}/predict_cryogen/{dataset}.{method}.log",
        benchmark:
            "benchmarks/{run}/predict_cryogen/{dataset}.{method}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} predict-cryogen --tomogram {input.tomogram:q} \
                --model {input.model:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
                --out {output.volume:q} --out-zarr {output.zarr:q} > {log:q} 2>&1
            """

else:

    rule predict_cryogen_tiles:
        """Predict one of predict.n_jobs groups of tiles (unblended) into its own tile store."""
        input:
            tomogram=preprocessed_tomogram,
            model="results/{run}/{dataset}/{method}/model.pt",
        output:
            tiles=directory("results/{run}/{dataset}/{method}/tiles/group_{group}.zarr"),
            meta="results/{run}/{dataset}/{method}/tiles/group_{group}.json",
        wildcard_constraints:
            method="cryogen|isonet",
            group=r"\d+",
        params:
            dataset=dataset_json,
            config=stage_json("predict"),
            n_groups=CFG.predict.n_jobs,
        log:
            "logs/{run}/predict_cryogen_tiles/{dataset}.{method}.{group}.log",
        benchmark:
            "benchmarks/{run}/predict_cryogen_tiles/{dataset}.{method}.{group}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} predict-cryogen-tiles --tomogram {input.tomogram:q} \
                --model {input.model:q} --dataset-json {params.dataset:q} --config-json {params.config:q} \
                --group {wildcards.group:q} --n-groups {params.n_groups:q} --out-tiles {output.tiles:q} \
                > {log:q} 2>&1
            """

    rule stitch_cryogen:
        """Blend the tile stores of all groups with Dask (one worker process per thread): Zarr, then MRC."""
        input:
            unpack(tile_group_outputs),
        output:
            volume="results/{run}/{dataset}/{method}/volume.mrc",
            zarr=directory("results/{run}/{dataset}/{method}/volume.zarr"),
            meta="results/{run}/{dataset}/{method}/volume.json",
        wildcard_constraints:
            method="cryogen|isonet",
        log:
            "logs/{run}/stitch_cryogen/{dataset}.{method}.log",
        benchmark:
            "benchmarks/{run}/stitch_cryogen/{dataset}.{method}.tsv"
        shell:
            """
            cryo-pipeline --threads {threads} stitch-tiles --tile-stores {input.tiles:q} --meta {input.meta:q} \
                --out {output.volume:q} --out-zarr {output.zarr:q} > {log:q} 2>&1
            """
