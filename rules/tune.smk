# Stage tune: Bayesian optimisation (Keras Tuner) on one fold, after exploration (docs/tune.md).


rule tune_search:
    input:
        unpack(get_tuning_input),
    output:
        best="results/tune/best_hyperparameters.json",
        trials="results/tune/trials.csv",
        objective_plot=report(
            "results/tune/objective_per_trial.png", caption="../report/figure.rst", category="3. Tuning"
        ),
        hyperparameters_plot=report(
            "results/tune/hyperparameters.png", caption="../report/figure.rst", category="3. Tuning"
        ),
        top_curves=report(
            "results/tune/top_trials_curves.png", caption="../report/curves.rst", category="3. Tuning"
        ),
    params:
        # Not outputs: Keras Tuner's state, kept so that a killed search resumes, and the
        # emissions record of every attempt.
        tuner_dir="results/tune/keras_tuner",
        emissions="results/tune/emissions.csv",
        settings=lambda wildcards: {k: config[k] for k in ("tune", "train", "model", "seed")},
    log:
        "logs/tune/tune_search.log",
    benchmark:
        "logs/tune/tune_search.benchmark.tsv"
    resources:
        # every trial, one after the other, each in a child process
        gpu=get_training_gpus(),
        mem_mb=get_training_memory_mb,
        runtime=1440,
    threads: get_job_threads("tune")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/tune/tune_search.py"
