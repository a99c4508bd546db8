"""The tune stage's TensorFlow jobs: what their scripts call (one function per rule).

Each configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.carbon import track_emissions
from imgclf.core import runtime
from imgclf.core.io import read_json
from imgclf.core.job import JobResources
from imgclf.core.objectives import direction, resolve_objective
from imgclf.training.files import TrainingInputs, resolve_batch_size
from imgclf.tune.search_space import fix_from_study


def tune_search(config: dict[str, Any], inputs: TrainingInputs, batch_size_file: str | Path | None,
                study_summary: str | Path | None, tuner_dir: str | Path, resources: JobResources, emissions: str | Path,
                log: logging.Logger) -> dict[str, Any]:
    """Rule tune_search: Bayesian (or Hyperband, random) search on one fold; resumes a killed search.

    Args:
        config: The validated config.
        inputs: The tuning fold.
        batch_size_file: The probe's record (with ``train.batch_size: auto``).
        study_summary: The exploration study ``tune.fix_from_study`` names, whose winner's values
            are set before the search (None without one).
        tuner_dir: Keras Tuner's state (not an output: it outlives a killed job).
        resources, emissions: The job's threads (each trial's), CPUs and memory; its emissions record.
        log: The job's logger.

    Returns:
        ``trials``, the three plots, and ``best`` (last).
    """
    with track_emissions(emissions, "tune", "search", config["carbon"], log):
        settings = runtime.configure(config["seed"], resources.threads, resources.cpus)
        from imgclf.tune.plots import plot_hyperparameters, plot_objective_per_trial, plot_top_curves
        from imgclf.tune.search import run_tuning

        fixed: dict[str, Any] = {}
        if study_summary:
            config, fixed = fix_from_study(config, read_json(study_summary))
            log.info("fixed from study %s: %s", config["tune"]["fix_from_study"], fixed)
        batch_size = resolve_batch_size(config["train"]["batch_size"], batch_size_file)
        result = run_tuning(config, inputs, Path(tuner_dir), batch_size, log, threads=resources.threads,
                            cpus=resources.cpus, job_memory_mb=resources.memory_mb)
    tune, table = config["tune"], result["table"]
    chosen = resolve_objective(config, "tune")
    objective = chosen["name"]
    best_row = table.dropna(subset=[objective]).sort_values(objective, ascending=direction(objective) == "min").iloc[0]
    log.info("best of %d trials: %s (%s %.4f)", len(table), result["best"], objective, best_row[objective])
    return {
        "trials": table,
        "objective_plot": plot_objective_per_trial(table, objective),
        "hyperparameters_plot": plot_hyperparameters(table, [p["name"] for p in tune["search_space"]], objective),
        "top_curves": plot_top_curves(table, result["histories"], objective),
        "best": {"hyperparameters": result["best"], "fixed_from_study": fixed, "objective": objective,
                 "objective_why": chosen["why"],
                 "best_value": float(best_row[objective]), "best_trial": str(best_row["trial"]),
                 "trials": int(len(table)), "algorithm": tune["algorithm"], "data_fraction": tune["data_fraction"],
                 "n_train": result["n_train"], "n_val": result["n_val"], "batch_size": batch_size,
                 "runtime": settings}}
