# Getting data: the files of `empiar` rows (URLs, file:// or local mirrors) into resources/.
# One job per file, run on the submitting host (cluster nodes often have no internet).
# Downloads resume from resources/<dataset>/<file>.part on the next run.


localrules:
    fetch_dataset,


rule fetch_dataset:
    """Download one file of an empiar row (resumable, retried, sha256-checked) with a JSON record."""
    output:
        file="resources/{dataset}/{file}",
        record="resources/{dataset}/{file}.fetch.json",
    params:
        dataset=fetch_dataset_json,
        role=fetch_role,
    wildcard_constraints:
        file=fetch_file_pattern(),
    log:
        "logs/fetch_dataset/{dataset}/{file}.log",
    shell:
        """
        cryo-pipeline fetch-dataset --dataset-json {params.dataset:q} --role {params.role:q} \
            --out {output.file:q} --record {output.record:q} > {log:q} 2>&1
        """
