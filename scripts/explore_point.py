"""Train one point of an exploration study (rule explore_point)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from pathlib import Path

from imgclf.carbon import track_emissions
from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
with step(f"explore_point {sm.wildcards.study}/{sm.wildcards.point}", sm.log[0]) as log, \
        track_emissions(sm.params.emissions, "explore", f"{sm.wildcards.study}/{sm.wildcards.point}",
                        sm.config["carbon"], log):
    config = sm.params.config
    settings = runtime.configure(config["seed"], sm.threads)
    import json

    import pandas as pd

    from imgclf.io import write_json
    from imgclf.training.loop import RunFiles
    from imgclf.training.plots import plot_curves, plot_weight_histograms
    from imgclf.training.run import TrainingInputs, run_training

    batch_size = config["train"]["batch_size"]
    if batch_size == "auto":
        batch_size = json.loads(Path(sm.input.batch_size).read_text())["chosen"]
    log.info("%s (batch size %d)", sm.params.label, batch_size)
    files = RunFiles(history=Path(sm.output.history), best_weights=Path(sm.output.best_weights),
                     weight_samples=Path(sm.output.weight_samples), resume_dir=Path(sm.params.resume_dir),
                     tensorboard_dir=Path(sm.params.tensorboard_dir))
    inputs = TrainingInputs(Path(sm.input.index), Path(sm.input.train), Path(sm.input.val),
                            Path(sm.input.data_root))
    metrics = run_training(config, inputs, files, batch_size, log)
    metrics.update(study=sm.wildcards.study, point=sm.wildcards.point, overrides=sm.params.overrides,
                   runtime=settings)
    title = f"{sm.wildcards.study}/{sm.wildcards.point}: {sm.params.label}"
    history = pd.read_csv(files.history)
    plot_curves(history, sm.output.curves, title)
    plot_weight_histograms(files.weight_samples, sm.output.weight_histograms, title)
    write_json(sm.output.metrics, metrics)
    if metrics["status"] == "diverged":
        log.warning("%s", metrics["message"])
    log.info("%s: %s, best epoch %s, %s = %s", sm.wildcards.point, metrics["status"], metrics["best_epoch"],
             metrics["monitor"], metrics["best_value"])
