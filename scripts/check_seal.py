"""Refuse to retrain a sealed final model whose decisions changed (rule check_seal)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.final import apply_tuning_result, decisions, fingerprint
from imgclf.io import write_json
from imgclf.scripting import step
from imgclf.seal import check_seal, read_seal

sm = snakemake  # noqa: F821
seed = int(sm.wildcards.seed)
with step(f"check_seal seed {seed}", sm.log[0]) as log:
    best = json.loads(Path(sm.input.best_hyperparameters).read_text()) if sm.input.get("best_hyperparameters") else None
    config, applied = apply_tuning_result(sm.params.config, best)
    current = decisions(config, sm.input.train, sm.input.val)
    # Read from the config, not a param: setting or removing the reason must not retrain anything.
    event = check_seal(read_seal(sm.params.seal), current, sm.config["evaluation"]["unseal_reason"], seed, "training")
    if event["status"] == "unsealed":
        log.warning("TEST SET UNSEALED for seed %d: decisions changed since its evaluation; reason given: %s",
                    seed, event["reason"])
    write_json(sm.output.check, {"seed": seed, "decisions_sha256": fingerprint(current), **event})
    log.info("seed %d: %s", seed, {"first": "not evaluated yet", "same": "sealed, decisions unchanged",
                                   "unsealed": "decisions changed, unsealed by evaluation.unseal_reason"}[event["status"]])
