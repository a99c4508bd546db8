"""Copy the chosen final model to results/model/ (rule deploy_model)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
import shutil
from pathlib import Path

from imgclf.evaluation import choose_deployed
from imgclf.io import sha256_file, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("deploy_model", sm.log[0]) as log:
    trainings = [json.loads(Path(p).read_text()) for p in sm.input.trainings]
    evaluations = {e["seed"]: e for e in (json.loads(Path(p).read_text()) for p in sm.input.evaluations)}
    monitor = trainings[0]["monitor"]
    validation = {t["seed"]: t["best_value"] for t in trainings if t["best_value"] is not None}
    choice = choose_deployed(validation, monitor, sm.params.rule)
    seed = choice["seed"]
    source = sm.input.models[[t["seed"] for t in trainings].index(seed)]
    temporary = Path(sm.output.model).with_suffix(".partial.keras")
    shutil.copyfile(source, temporary)
    os.replace(temporary, sm.output.model)
    training = next(t for t in trainings if t["seed"] == seed)
    rank = [t["seed"] for t in trainings].index(seed)
    for sources, target in ((sm.input.histories, sm.output.history), (sm.input.curves, sm.output.curves),
                            (sm.input.predictions, sm.output.predictions)):
        temporary = Path(target).with_name(f".{Path(target).name}.partial")
        shutil.copyfile(sources[rank], temporary)
        os.replace(temporary, target)
    summary = json.loads(Path(sm.input.summary).read_text())
    test = evaluations[seed]["metrics"]
    write_json(sm.output.card, {
        "chosen": choice, "source": source, "sha256": sha256_file(sm.output.model),
        "classes": training["classes"], "image_size": training["image_size"], "channels": training["channels"],
        "input": "float32 pixel values in [0, 255], shape (batch, height, width, channels); the model rescales",
        "validation": validation, "config": training["decisions"]["config"], "fold": training["fold"],
        "test": {k: test[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece")},
        "test_over_seeds": {k: summary["aggregate"][k] for k in ("accuracy", "balanced_accuracy")},
        "targets": summary["targets"], "all_targets_met": summary["all_targets_met"]})
    log.info("deployed seed %d (%s: %s %.4f) to %s; its test accuracy %.4f", seed, choice["rule"], monitor,
             choice["value"], sm.output.model, test["accuracy"])
