"""Evaluate one final model on the sealed test set (rule evaluate_model).

The only script that reads the test manifest.
"""

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
with step(f"evaluate_model seed {seed}", sm.log[0]) as log, \
        track_emissions(sm.params.emissions, "evaluate", f"seed_{seed}", sm.config["carbon"], log):
    runtime.configure(seed, sm.threads)
    import json

    from imgclf.evaluation import classification_metrics, predictions_table
    from imgclf.evaluation_plots import plot_confusion_matrix
    from imgclf.io import sha256_file, write_csv, write_json
    from imgclf.seal import check_seal, read_seal, record_evaluation
    from imgclf.training.inputs import read_manifest
    from imgclf.training.predict import load_model, predict_proba

    training = json.loads(Path(sm.input.training).read_text())
    current = {**training["decisions"], "test_manifest_sha256": sha256_file(sm.input.test)}
    # Checked before the test manifest's images are read.
    event = check_seal(read_seal(sm.params.seal), current, sm.config["evaluation"]["unseal_reason"], seed,
                       "evaluation")
    if event["status"] == "unsealed":
        log.warning("TEST SET UNSEALED for seed %d: evaluated again after these changes: %s; reason given: %s",
                    seed, ", ".join(c["key"] for c in event["changes"]), event["reason"])
    classes = training["classes"]
    test = read_manifest(sm.input.test, sm.input.data_root, classes)
    model = load_model(sm.input.model)
    proba = predict_proba(model, test, tuple(training["image_size"]), training["channels"], training["batch_size"])
    metrics = classification_metrics(test.labels, proba, classes, n_bins=sm.params.ece_bins)
    write_csv(sm.output.predictions, predictions_table(test.table, test.labels, proba, classes))
    plot_confusion_matrix(metrics["confusion_matrix"], classes,
                          f"final seed {seed}: test accuracy {metrics['accuracy']:.4f} (n = {metrics['n']})",
                          sm.output.confusion_matrix)
    headline = {k: metrics[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece")}
    seal = record_evaluation(sm.params.seal, sm.params.events, seed, current, event, headline)
    write_json(sm.output.metrics, {"seed": seed, "fold": training["fold"], "classes": classes, "metrics": metrics,
                                   "decisions_sha256": training["decisions_sha256"],
                                   "test_manifest_sha256": current["test_manifest_sha256"],
                                   "seal": {**event, "evaluation": seal["evaluations"],
                                            "unsealed": [h for h in seal["history"] if h["status"] == "unsealed"]}})
    log.info("seed %d: test accuracy %.4f, balanced accuracy %.4f, log loss %.4f, ECE %.4f (%d images; "
             "evaluation %d of this model, %s)", seed, metrics["accuracy"], metrics["balanced_accuracy"],
             metrics["log_loss"], metrics["ece"], metrics["n"], seal["evaluations"], event["status"])
