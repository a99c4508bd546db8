"""Bayesian tuning on one fold (rule tune)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.carbon import track_emissions
from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
with step("tune", sm.log[0]) as log, track_emissions(sm.params.emissions, "tune", "search", sm.config["carbon"], log):
    config = sm.config
    settings = runtime.configure(config["seed"], sm.threads)
    from imgclf.io import write_csv, write_json
    from imgclf.search_space import fix_from_study
    from imgclf.training.run import TrainingInputs
    from imgclf.tuning import run_tuning
    from imgclf.tuning_plots import plot_hyperparameters, plot_objective_per_trial, plot_top_curves

    fixed = {}
    if sm.input.get("study_summary"):
        config, fixed = fix_from_study(config, json.loads(Path(sm.input.study_summary).read_text()))
        log.info("fixed from study %s: %s", config["tune"]["fix_from_study"], fixed)
    batch_size = config["train"]["batch_size"]
    if batch_size == "auto":
        batch_size = json.loads(Path(sm.input.batch_size).read_text())["chosen"]
    inputs = TrainingInputs(Path(sm.input.index), Path(sm.input.train), Path(sm.input.val),
                            Path(sm.input.data_root))
    result = run_tuning(config, inputs, Path(sm.params.tuner_dir), batch_size, log, threads=sm.threads)
    tune = config["tune"]
    table = result["table"]
    write_csv(sm.output.trials, table)
    objective = tune["objective"]
    plot_objective_per_trial(table, objective, sm.output.objective_plot)
    plot_hyperparameters(table, [p["name"] for p in tune["search_space"]], objective, sm.output.hyperparameters_plot)
    plot_top_curves(table, result["histories"], objective, sm.output.top_curves)
    best_row = table.dropna(subset=[objective]).sort_values(objective, ascending=objective.endswith("loss")).iloc[0]
    write_json(sm.output.best, {
        "hyperparameters": result["best"], "fixed_from_study": fixed, "objective": objective,
        "best_value": float(best_row[objective]), "best_trial": str(best_row["trial"]),
        "trials": int(len(table)), "algorithm": tune["algorithm"], "data_fraction": tune["data_fraction"],
        "n_train": result["n_train"], "n_val": result["n_val"], "batch_size": batch_size, "runtime": settings})
    log.info("best of %d trials: %s (%s %.4f)", len(table), result["best"], objective, best_row[objective])
