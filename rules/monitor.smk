# Stage monitor: drift monitoring after deployment: each batch of new images (monitor.batches)
# against the deployed model's reference. `snakemake monitor` (make monitor BATCH=folder) runs
# it (docs/monitor.md).


wildcard_constraints:
    batch="[A-Za-z0-9][A-Za-z0-9_.-]*",


rule monitor_reference:
    input:
        model="results/evaluate/deployed/model.keras",
        card="results/evaluate/deployed/model.json",
        index="results/data/index.csv",
        # The deployed model's fold is read from its card: every fold's manifests are inputs.
        train=get_fold_manifests("train"),
        val=get_fold_manifests("val"),
        data_root=get_data_root_input(),
    output:
        statistics="results/monitor/_reference/image_statistics.csv",
        embeddings="results/monitor/_reference/embeddings.npz",
        predictions="results/monitor/_reference/predictions.csv",
    params:
        reference_images=config["monitor"]["reference_images"],
        seed=config["seed"],
    log:
        "logs/monitor/reference.log",
    benchmark:
        "logs/monitor/reference.benchmark.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    threads: 1
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/monitor/monitor_reference.py"


rule monitor_batch:
    input:
        unpack(get_monitor_batch_input),
        model="results/evaluate/deployed/model.keras",
        card="results/evaluate/deployed/model.json",
        reference_statistics="results/monitor/_reference/image_statistics.csv",
        reference_embeddings="results/monitor/_reference/embeddings.npz",
        reference_predictions="results/monitor/_reference/predictions.csv",
    output:
        report="results/monitor/{batch}/drift.json",
        markdown="results/monitor/{batch}/drift.md",
        images="results/monitor/{batch}/images.csv",
        plot=report(
            "results/monitor/{batch}/drift.png",
            caption="../report/figure.rst",
            category="9. Drift monitoring",
        ),
    params:
        batch=lambda wildcards: get_monitor_batch(wildcards.batch),
        # New, removed or resized files rerun the report (the folder's time says nothing).
        fingerprint=get_monitor_batch_fingerprint,
        settings={k: v for k, v in config["monitor"].items() if k not in ("batches", "on_bad_file")},
        validation={
            "on_bad_file": config["monitor"]["on_bad_file"],
            "max_image_pixels": config["validation"]["max_image_pixels"],
            "min_image_side": config["validation"]["min_image_side"],
        },
        seed=config["seed"],
    log:
        "logs/monitor/{batch}.log",
    benchmark:
        "logs/monitor/{batch}.benchmark.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    threads: 1
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/monitor/monitor_batch.py"


rule monitor_summary:
    input:
        reports=get_monitor_output(),
    output:
        summary="results/monitor/summary.md",
    params:
        batches=list(config["monitor"]["batches"]),
    log:
        "logs/monitor/summary.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/monitor/monitor_summary.py"
