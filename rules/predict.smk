# Stage predict: the class of every image of a batch of new images (predict.batches), with the
# deployed model, the ensemble of the final models or a TFLite file (predict.model).
# `snakemake predict` (make predict IMAGES=folder) runs it (docs/predict.md).


rule predict_batch:
    input:
        unpack(get_predict_batch_input),
        unpack(get_predict_model_input),
    output:
        predictions="results/predict/{batch}/predictions.csv",
        summary="results/predict/{batch}/predict.json",
    params:
        batch=lambda wildcards: get_predict_batch(wildcards.batch),
        # New, removed or resized files predict again (the folder's time says nothing).
        fingerprint=get_predict_batch_fingerprint,
        kind=config["predict"]["model"],
        settings={k: v for k, v in config["predict"].items() if k not in ("batches", "on_bad_file")},
        validation={
            "on_bad_file": config["predict"]["on_bad_file"],
            "max_image_pixels": config["validation"]["max_image_pixels"],
            "min_image_side": config["validation"]["min_image_side"],
        },
        seed=config["seed"],
    log:
        "logs/predict/{batch}.log",
    benchmark:
        "logs/predict/{batch}.benchmark.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    # The evaluation's threads: the predictions of the test images equal the evaluation's.
    threads: get_job_threads("evaluate")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/predict/predict_batch.py"


rule predict_summary:
    input:
        summaries=get_predict_output("predict.json"),
    output:
        summary="results/predict/summary.md",
    params:
        batches=list(config["predict"]["batches"]),
    log:
        "logs/predict/summary.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/predict/predict_summary.py"
