# CryoGEN and the IsoNet-style baseline: train on the subtomograms, then tiled inference.
# Both methods share these rules ({method} is cryogen or isonet) and the train/predict config.


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
