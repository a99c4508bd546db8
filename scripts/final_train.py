"""One final training: the chosen configuration with one seed (rule final_train)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from pathlib import Path

from imgclf.carbon import track_emissions
from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
seed = int(sm.wildcards.seed)
with step(f"final_train seed {seed}", sm.log[0]) as log, \
        track_emissions(sm.params.emissions, "final", f"seed_{seed}", sm.config["carbon"], log):
    settings = runtime.configure(seed, sm.threads)
    import json

    import pandas as pd

    from imgclf.final import apply_tuning_result, decisions, fingerprint
    from imgclf.io import write_json
    from imgclf.training.loop import RunFiles
    from imgclf.training.plots import plot_curves, plot_weight_histograms
    from imgclf.training.run import TrainingInputs, run_training

    best = json.loads(Path(sm.input.best_hyperparameters).read_text()) if sm.input.get("best_hyperparameters") else None
    config, applied = apply_tuning_result(sm.params.config, best)
    batch_size = config["train"]["batch_size"]
    if batch_size == "auto":
        batch_size = json.loads(Path(sm.input.batch_size).read_text())["chosen"]
    log.info("seed %d on fold %d, batch size %d, up to %d epochs; tuned values: %s", seed, sm.params.fold,
             batch_size, config["train"]["epochs"], applied or "none (tuning disabled)")
    files = RunFiles(history=Path(sm.output.history), best_weights=Path(sm.output.best_weights),
                     weight_samples=Path(sm.output.weight_samples), resume_dir=Path(sm.params.resume_dir),
                     tensorboard_dir=Path(sm.params.tensorboard_dir), model=Path(sm.output.model))
    inputs = TrainingInputs(Path(sm.input.index), Path(sm.input.train), Path(sm.input.val),
                            Path(sm.input.data_root))
    record = decisions(config, sm.input.train, sm.input.val)
    metrics = run_training(config, inputs, files, batch_size, log)
    metrics.update(seed=seed, fold=sm.params.fold, applied=applied, decisions=record,
                   decisions_sha256=fingerprint(record), runtime=settings)
    title = f"final seed {seed} (fold {sm.params.fold})"
    plot_curves(pd.read_csv(files.history), sm.output.curves, title)
    plot_weight_histograms(files.weight_samples, sm.output.weight_histograms, title)
    write_json(sm.output.metrics, metrics)
    if metrics["status"] == "diverged":
        log.warning("%s", metrics["message"])
    log.info("seed %d: %s, best epoch %s, %s = %s", seed, metrics["status"], metrics["best_epoch"],
             metrics["monitor"], metrics["best_value"])
