# Stage export: the deployed model as TFLite files (float32, float16, int8), each measured
# against the Keras model on the test set, and the model card over the whole run (docs/export.md).
# (No `def` here: snakemake --lint wants functions in rules/common.smk or the package.)
from imgclf.export import export_settings


rule export_model:
    input:
        model="results/evaluate/deployed/model.keras",
        deployed="results/evaluate/deployed/model.json",
        # The deployed model's fold is known only once deploy_model ran: the job picks
        # that fold's manifest for the int8 calibration images.
        train_manifests=get_fold_manifests("train"),
        # The bias audit's reference for the image-slice edges (as in rule audit_models).
        audit_reference=get_fold_manifest(0, "train"),
        test=TEST_MANIFEST,
        predictions="results/evaluate/deployed/predictions.csv",
        index="results/data/index.csv",
        data_root=get_data_root_input(),
    output:
        tflite=get_tflite_files(),
        export="results/export/export.json",
        markdown="results/export/export.md",
    params:
        # Only what the export reads: a new target or model-card text converts nothing again.
        settings=export_settings(config),
    log:
        "logs/export/export_model.log",
    benchmark:
        "logs/export/export_model.benchmark.tsv"
    resources:
        # conversion and CPU latency: no GPU
        mem_mb=16000,
        runtime=60,
    threads: config["export"]["threads"]
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/export/export_model.py"


rule model_card:
    input:
        # export.json only when export.enabled
        unpack(get_model_card_input),
    output:
        card="results/export/model_card.json",
        markdown="results/export/model_card.md",
    params:
        intended_use=config["export"]["intended_use"],
        limitations=config["export"]["limitations"],
    log:
        "logs/export/model_card.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/export/model_card.py"
