# Deployment: the deployed model as TFLite files (float32, float16, int8), each measured
# against the Keras model on the test set, and the model card over the whole run.
# (No `def` here: snakemake --lint wants functions in rules/common.smk or the package.)
from imgclf.export import export_settings
from imgclf.model_card import model_card_inputs


rule export_model:
    input:
        model="results/model/model.keras",
        deployed="results/model/model.json",
        # The deployed model's fold is known only once deploy_model ran: the script picks
        # that fold's manifest for the int8 calibration images.
        train_manifests=get_fold_manifests("train"),
        # The bias audit's reference for the image-slice edges (as in rule audit_models).
        audit_reference="results/splits/fold_0/train.csv",
        test="results/splits/test.csv",
        predictions="results/model/predictions.csv",
        index="results/data/index.csv",
        data_root=get_data_root_input(),
    output:
        tflite=expand("results/export/model_{format}.tflite", format=config["export"]["formats"]),
        export="results/export/export.json",
        markdown="results/export/export.md",
    params:
        # Only what the export reads: a new target or model-card text converts nothing again.
        settings=export_settings(config),
    log:
        "logs/deploy/export_model.log",
    benchmark:
        "logs/benchmarks/deploy/export_model.tsv"
    resources:
        # conversion and CPU latency: no GPU
        mem_mb=16000,
        runtime=60,
    threads: config["export"]["threads"]
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/export_model.py"


rule model_card:
    input:
        # export.json only when export.enabled
        unpack(lambda wildcards: model_card_inputs(config)),
    output:
        card="results/model/model_card.json",
        markdown="results/model/model_card.md",
    params:
        intended_use=config["export"]["intended_use"],
        limitations=config["export"]["limitations"],
    log:
        "logs/deploy/model_card.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/model_card.py"
