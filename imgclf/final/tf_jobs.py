"""The final stage's TensorFlow jobs: what their scripts call (one function per rule).

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
from imgclf.final.plan import decisions, effective_settings, fingerprint, tuned_config
from imgclf.training.files import RunFiles, TrainingInputs, resolve_batch_size

def final_train(config: dict[str, Any], seed: int, fold: int, inputs: TrainingInputs, files: RunFiles,
                best_hyperparameters: str | Path | None, batch_size_file: str | Path | None, resources: JobResources,
                carbon: dict[str, Any], emissions: str | Path, log: logging.Logger,
                pretrained_weights: str | Path | None = None) -> dict[str, Any]:
    """Rule final_train: the chosen configuration trained once with this seed.

    Args:
        config: The final training's config (:func:`imgclf.final.plan.training_config`).
        seed, fold: Its seed and fold. inputs: The fold. files: Where the run writes as it trains
            (the model among them).
        best_hyperparameters: The tuning result (None without tuning).
        batch_size_file: The probe's record (with ``train.batch_size: auto``).
        resources, carbon, emissions: The job's threads (``threads.final``, sealed), CPUs and memory,
            the carbon settings, its emissions record.
        log: The job's logger.
        pretrained_weights: The weights stage's record (when the model starts from ImageNet weights).

    Returns:
        ``curves``, ``weight_histograms`` and ``metrics`` (last).
    """
    with track_emissions(emissions, "final", f"seed_{seed}", carbon, log):
        settings = runtime.configure(seed, resources.threads, resources.cpus)
        from imgclf.training.run import run_outputs, run_training

        config, applied = tuned_config(config, best_hyperparameters)
        batch_size = resolve_batch_size(config["train"]["batch_size"], batch_size_file)
        log.info("seed %d on fold %d, batch size %d, up to %d epochs; tuned values: %s", seed, fold, batch_size,
                 config["train"]["epochs"], applied or "none (tuning disabled)")
        if config["train"]["batch_size"] == "auto":
            log.warning("train.batch_size is auto: batch size %d was picked by timing (%s); these results depend "
                        "on the hardware that probed. Set train.batch_size: %d to make that explicit",
                        batch_size, batch_size_file, batch_size)
        effective = effective_settings(config, batch_size, resources.threads, read_json(pretrained_weights))
        record = decisions(config, inputs.train_manifest, inputs.val_manifest, effective)
        metrics = run_training(config, inputs, files, batch_size, log, resources.memory_mb)
    # Whether this model continued from a resume state is a decision behind it, known only now.
    record["resumed"] = metrics.get("resumed")
    metrics.update(seed=seed, fold=fold, applied=applied, decisions=record, decisions_sha256=fingerprint(record),
                   runtime=settings)
    return run_outputs(metrics, files, f"final seed {seed} (fold {fold})", f"seed {seed}", log)
