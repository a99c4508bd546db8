# Tuning stage: Bayesian optimisation (Keras Tuner) on one fold, after exploration.


rule tune:
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
        # Not an output: Keras Tuner's state, kept so that a killed search resumes.
        tuner_dir="results/tune/keras_tuner",
        emissions="results/carbon/jobs/tune.csv",
        settings=lambda wildcards: {k: config[k] for k in ("tune", "train", "model", "seed")},
    log:
        "logs/tune/tune.log",
    benchmark:
        "logs/benchmarks/tune.tsv"
    resources:
        # every trial, one after the other, each in a child process
        gpu=1,
        mem_mb=16000,
        runtime=1440,
    threads: 2
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/tune.py"
