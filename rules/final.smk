# Stage final: the chosen configuration retrained once per seed, each its own job (in parallel
# locally, on separate GPU nodes on a cluster), each behind the seal check (docs/final.md).


wildcard_constraints:
    seed=r"\d+",


rule check_seal:
    # Before a final training starts (and deletes the previous model), refuse to
    # retrain a model whose test metrics exist when its decisions changed.
    input:
        unpack(get_final_input),
    output:
        check="results/final/seed_{seed}/seal_check.json",
    params:
        config=get_final_config,
        # Not an output: the record of the test set's evaluations outlives reruns.
        seal="results/evaluate/seal/seed_{seed}.json",
        # The final training's intra-op threads (config threads.final, which the training reads
        # too): a sealed decision, checked before it starts.
        threads=config["threads"]["final"],
    log:
        "logs/final/seed_{seed}.seal_check.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/final/check_seal.py"


rule final_train:
    input:
        unpack(get_final_input),
        seal_check="results/final/seed_{seed}/seal_check.json",
    output:
        model="results/final/seed_{seed}/model.keras",
        metrics="results/final/seed_{seed}/metrics.json",
        history="results/final/seed_{seed}/history.csv",
        curves=report(
            "results/final/seed_{seed}/curves.png",
            caption="../report/curves.rst",
            category="4. Final trainings",
            subcategory="seed {seed}",
        ),
        weight_histograms=report(
            "results/final/seed_{seed}/weight_histograms.png",
            caption="../report/weight_histograms.rst",
            category="4. Final trainings",
            subcategory="seed {seed}",
        ),
        weight_samples="results/final/seed_{seed}/weight_samples.npz",
        best_weights="results/final/seed_{seed}/best.weights.h5",
    params:
        config=get_final_config,
        fold=get_final_fold,
        # Not outputs: the resume state must survive a killed job; the emissions record keeps
        # every attempt.
        resume_dir="results/final/seed_{seed}/resume",
        tensorboard_dir="results/final/seed_{seed}/tensorboard",
        emissions="results/final/seed_{seed}/emissions.csv",
    log:
        "logs/final/seed_{seed}.log",
    benchmark:
        "logs/final/seed_{seed}.benchmark.tsv"
    resources:
        gpu=get_training_gpus(),
        mem_mb=get_training_memory_mb,
        runtime=480,
    threads: get_job_threads("final")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/final/final_train.py"
