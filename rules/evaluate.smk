# Stage evaluate: each final model evaluated once on the sealed test set (evaluate_model is
# the only job that reads the test manifest), then the seeds aggregated, the targets checked
# and one model deployed (docs/evaluate.md); its saliency maps explain it.
from imgclf.audit import audit_settings


rule evaluate_model:
    input:
        model="results/final/seed_{seed}/model.keras",
        training="results/final/seed_{seed}/metrics.json",
        test=TEST_MANIFEST,
        # Its predictions there are where operating thresholds are chosen: never on the test set.
        validation=lambda wildcards: get_fold_manifest(get_final_fold(wildcards), "val"),
        index="results/data/index.csv",
        data_root=get_data_root_input(),
    output:
        metrics="results/evaluate/seed_{seed}/metrics.json",
        predictions="results/evaluate/seed_{seed}/predictions.csv",
        validation_predictions="results/evaluate/seed_{seed}/validation_predictions.csv",
        confusion_matrix="results/evaluate/seed_{seed}/confusion_matrix.png",
    params:
        ece_bins=config["evaluation"]["ece_bins"],
        tta=config["evaluation"]["tta"],
        # Not outputs: the seal and the event log outlive reruns; so does the emissions record.
        seal="results/evaluate/seal/seed_{seed}.json",
        events="results/evaluate/seal/events.jsonl",
        emissions="results/evaluate/seed_{seed}/emissions.csv",
    log:
        "logs/evaluate/seed_{seed}.log",
    benchmark:
        "logs/evaluate/seed_{seed}.benchmark.tsv"
    resources:
        # prediction on the test set: CPUs are enough
        mem_mb=16000,
        runtime=60,
    threads: get_job_threads("evaluate")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/evaluate/evaluate_model.py"


rule ensemble_model:
    input:
        models=get_final_files("results/final/seed_{seed}/model.keras"),
        trainings=get_final_files("results/final/seed_{seed}/metrics.json"),
    output:
        model="results/evaluate/ensemble/model.keras",
        card="results/evaluate/ensemble/model.json",
    log:
        "logs/evaluate/ensemble_model.log",
    resources:
        mem_mb=8000,
        runtime=30,
    threads: 1
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/evaluate/ensemble_model.py"


rule evaluate_ensemble:
    input:
        card="results/evaluate/ensemble/model.json",
        evaluations=get_final_files("results/evaluate/seed_{seed}/metrics.json"),
        predictions=get_final_files("results/evaluate/seed_{seed}/predictions.csv"),
        test=TEST_MANIFEST,
    output:
        metrics="results/evaluate/ensemble/metrics.json",
        predictions="results/evaluate/ensemble/predictions.csv",
    params:
        ece_bins=config["evaluation"]["ece_bins"],
        # Not outputs: the seal and the event log outlive reruns.
        seal="results/evaluate/seal/ensemble.json",
        events="results/evaluate/seal/events.jsonl",
        unseal_reason=config["evaluation"]["unseal_reason"],
    log:
        "logs/evaluate/ensemble.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate/evaluate_ensemble.py"


rule evaluation_summary:
    input:
        unpack(get_ensemble_evaluation),
        evaluations=get_final_files("results/evaluate/seed_{seed}/metrics.json"),
        predictions=get_final_files("results/evaluate/seed_{seed}/predictions.csv"),
        validation_predictions=get_final_files("results/evaluate/seed_{seed}/validation_predictions.csv"),
        index="results/data/index.csv",
    output:
        summary="results/evaluate/summary.json",
        markdown="results/evaluate/summary.md",
        per_seed="results/evaluate/metrics_per_seed.csv",
        # The figures dvc metrics show and dvc metrics diff read (dvc.yaml).
        headline="results/evaluate/test_metrics.json",
        confusion_matrix=report(
            "results/evaluate/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="5. Test evaluation",
        ),
        metrics_plot=report(
            "results/evaluate/metrics_over_seeds.png",
            caption="../report/figure.rst",
            category="5. Test evaluation",
        ),
    params:
        targets=config["targets"],
        confidence=config["evaluation"]["confidence"],
        ece_bins=config["evaluation"]["ece_bins"],
        apply_thresholds=config["evaluation"]["apply_thresholds"],
    log:
        "logs/evaluate/summary.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate/evaluation_summary.py"


rule deploy_model:
    input:
        unpack(get_ensemble_deployment),
        models=get_final_files("results/final/seed_{seed}/model.keras"),
        trainings=get_final_files("results/final/seed_{seed}/metrics.json"),
        evaluations=get_final_files("results/evaluate/seed_{seed}/metrics.json"),
        histories=get_final_files("results/final/seed_{seed}/history.csv"),
        curves=get_final_files("results/final/seed_{seed}/curves.png"),
        predictions=get_final_files("results/evaluate/seed_{seed}/predictions.csv"),
        summary="results/evaluate/summary.json",
    output:
        model="results/evaluate/deployed/model.keras",
        card="results/evaluate/deployed/model.json",
        # The deployed run's, at fixed paths (dvc plots show reads them).
        history="results/evaluate/deployed/history.csv",
        curves="results/evaluate/deployed/curves.png",
        predictions="results/evaluate/deployed/predictions.csv",
    params:
        rule=config["evaluation"]["deploy"],
        objective=get_objective("deploy"),
    log:
        "logs/evaluate/deploy_model.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate/deploy_model.py"


rule saliency_maps:
    input:
        model="results/evaluate/deployed/model.keras",
        deployed="results/evaluate/deployed/model.json",
        # The deployed model's test predictions: which images, and what it answered.
        predictions="results/evaluate/deployed/predictions.csv",
        index="results/data/index.csv",
        # The bias audit's reference for the image-slice edges (as in rule audit_models).
        audit_reference=get_fold_manifest(0, "train"),
        data_root=get_data_root_input(),
    output:
        border_shares="results/evaluate/saliency/border_shares.csv",
        gallery=report(
            "results/evaluate/saliency/gallery.png",
            caption="../report/figure.rst",
            category="5. Test evaluation",
        ),
        saliency="results/evaluate/saliency/saliency.json",
    params:
        settings={k: v for k, v in config["evaluation"]["saliency"].items() if k != "enabled"},
        # The audit's groups (metadata columns binned, image slices): border shares per group.
        audit=lambda wildcards: audit_settings(config),
        seed=config["seed"],
    log:
        "logs/evaluate/saliency_maps.log",
    benchmark:
        "logs/evaluate/saliency_maps.benchmark.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    threads: get_job_threads("evaluate")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/evaluate/saliency_maps.py"
