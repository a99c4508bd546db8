"""The final stage's jobs that need no TensorFlow: what their scripts call (one function per rule).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.evaluate import check_seal as judge_seal
from imgclf.evaluate import read_seal
from imgclf.core.io import read_json
from imgclf.final.plan import decisions, effective_settings, fingerprint, tuned_config
from imgclf.training.files import resolve_batch_size

#: What each seal status means, for the log.
SEAL_STATUS = {"first": "not evaluated yet", "same": "sealed, decisions unchanged",
               "unsealed": "decisions changed, unsealed by evaluation.unseal_reason"}


def check_seal(config: dict[str, Any], seed: int, train: str | Path, val: str | Path,
               best_hyperparameters: str | Path | None, seal: str | Path, unseal_reason: str | None,
               batch_size_file: str | Path | None, threads: int, pretrained_weights: str | Path | None,
               log: logging.Logger) -> dict[str, Any]:
    """Rule check_seal: before a final training starts (and replaces the previous model), refuse
    to retrain a model whose test metrics exist when the decisions behind it changed.

    Args:
        config: The final training's config (:func:`imgclf.final.plan.training_config`).
        seed: Its seed. train, val: Its fold's manifests.
        best_hyperparameters: The tuning result (None without tuning).
        seal: The model's seal (absent before its first evaluation).
        unseal_reason: ``evaluation.unseal_reason``.
        batch_size_file: The probe's record (with ``train.batch_size: auto``).
        threads: The final training job's threads.
        pretrained_weights: The weights stage's record (when the model starts from ImageNet weights).
        log: The job's logger.

    Returns:
        ``check``: the seal's status and the decisions' hash.

    Raises:
        SealedTestError: The decisions changed and no unseal reason is given.
    """
    config, _ = tuned_config(config, best_hyperparameters)
    effective = effective_settings(config, resolve_batch_size(config["train"]["batch_size"], batch_size_file),
                                   threads, read_json(pretrained_weights))
    current = decisions(config, train, val, effective)
    event = judge_seal(read_seal(seal), current, unseal_reason, seed, "training")
    if event["status"] == "unsealed":
        log.warning("TEST SET UNSEALED for seed %d: decisions changed since its evaluation; reason given: %s",
                    seed, event["reason"])
    log.info("seed %d: %s", seed, SEAL_STATUS[event["status"]])
    return {"check": {"seed": seed, "decisions_sha256": fingerprint(current), **event}}
