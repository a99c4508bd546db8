# Stage explore: the batch-size probe, one job per (scientific, nuisance) point of every study,
# and a summary per study (docs/explore.md).


wildcard_constraints:
    study=r"[A-Za-z0-9_-]+",
    point=r"p\d+",


rule probe_batch_size:
    input:
        index="results/data/index.csv",
        train=get_fold_manifest(config["explore"]["fold"], "train"),
        data_audit=get_data_audit_gate(),
    output:
        batch_size="results/explore/batch_size.json",
    params:
        # Not an output: an emissions file outlives failed attempts (each adds its row).
        emissions="results/explore/batch_size_emissions.csv",
        # Not an output either: the kept pick, reused instead of probing again (batch_probe.record).
        record=config["batch_probe"]["record"],
    log:
        "logs/explore/probe_batch_size.log",
    benchmark:
        "logs/explore/probe_batch_size.benchmark.tsv"
    resources:
        # measures throughput on the hardware the trainings use
        gpu=get_training_gpus(),
        mem_mb=16000,
        runtime=30,
    threads: get_job_threads("probe")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/explore/probe_batch_size.py"


rule explore_point:
    input:
        unpack(get_exploration_input),
    output:
        metrics="results/explore/{study}/{point}/metrics.json",
        history="results/explore/{study}/{point}/history.csv",
        curves="results/explore/{study}/{point}/curves.png",
        weight_histograms="results/explore/{study}/{point}/weight_histograms.png",
        weight_samples="results/explore/{study}/{point}/weight_samples.npz",
        best_weights="results/explore/{study}/{point}/best.weights.h5",
    params:
        config=get_point_config,
        overrides=lambda wildcards: get_point(wildcards).overrides,
        label=lambda wildcards: get_point(wildcards).label(),
        # Not outputs: the resume state must survive a killed job.
        resume_dir="results/explore/{study}/{point}/resume",
        tensorboard_dir="results/explore/{study}/{point}/tensorboard",
        emissions="results/explore/{study}/{point}/emissions.csv",
    log:
        "logs/explore/{study}/{point}.log",
    benchmark:
        "logs/explore/{study}/{point}.benchmark.tsv"
    resources:
        gpu=get_training_gpus(),
        mem_mb=get_training_memory_mb,
        runtime=240,
    threads: get_job_threads("explore")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/explore/explore_point.py"


rule explore_summary:
    input:
        metrics=lambda wildcards: get_study_outputs(wildcards.study, "metrics.json"),
        histories=lambda wildcards: get_study_outputs(wildcards.study, "history.csv"),
    output:
        summary="results/explore/{study}/summary.json",
        table="results/explore/{study}/points.csv",
        markdown="results/explore/{study}/summary.md",
        plot=report(
            "results/explore/{study}/objective.png",
            caption="../report/figure.rst",
            category="2. Exploration",
            subcategory="{study}",
        ),
        best_curves=report(
            "results/explore/{study}/best_curves.png",
            caption="../report/curves.rst",
            category="2. Exploration",
            subcategory="{study}",
        ),
    params:
        study=lambda wildcards: get_study(wildcards.study),
        objective=get_objective("explore"),
    localrule: True
    log:
        "logs/explore/{study}/summary.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/explore/explore_summary.py"
