"""Drift report of one new batch of images against the reference (rule monitor_batch)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.scripting import progress_logger, step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
name = sm.wildcards.batch
with step(f"monitor_batch {name}", sm.log[0]) as log:
    runtime.configure(sm.params.seed, sm.threads)
    import numpy as np
    import pandas as pd

    from imgclf.io import atomic_write_text, read_index, write_csv, write_json
    from imgclf.monitor import drift_markdown, drift_report, inspect_batch, list_batch
    from imgclf.monitor_plots import plot_drift
    from imgclf.training.inputs import Manifest
    from imgclf.training.predict import load_model, predict_with_embeddings
    from imgclf.validation import ValidationOptions

    card = json.loads(Path(sm.input.card).read_text())
    classes = card["classes"]
    batch = list_batch(name, sm.params.batch)
    log.info("batch %s: %d files (%s, %s)", name, len(batch.entries), batch.source,
             "labelled" if batch.labelled else "unlabelled")
    options = ValidationOptions(**{**sm.params.validation, "image_size": tuple(card["image_size"])})
    images, dropped = inspect_batch(batch, options, workers=sm.threads,
                                    progress=progress_logger(log, "images inspected"))
    for item in dropped:
        log.warning("dropped %s: %s (%s)", item["path"], item["problem"], item["detail"])
    manifest = Manifest([str(batch.root / p) for p in images["path"]], np.zeros(len(images), np.int32), images)
    model = load_model(sm.input.model)
    embeddings, proba = predict_with_embeddings(model, manifest, tuple(card["image_size"]), card["channels"], 64)
    predictions = pd.DataFrame({"path": images["path"], "label": images["label"],
                                "predicted": [classes[i] for i in proba.argmax(1)],
                                "confidence": proba.max(1).round(6)})
    reference_images = read_index(sm.input.reference_statistics)
    # keep_default_na off: a class named NA stays a class.
    reference_predictions = pd.read_csv(sm.input.reference_predictions, dtype={"label": str, "predicted": str},
                                        keep_default_na=False, na_values=[""])
    reference_embeddings = np.load(sm.input.reference_embeddings)["embeddings"]
    test = card["test"]
    report = drift_report(reference_images, images, reference_embeddings, embeddings, reference_predictions,
                          predictions, classes, {"correct": round(test["accuracy"] * test["n"]), "n": test["n"]},
                          sm.params.settings, sm.params.seed)
    report.update(batch=name, path=str(sm.params.batch["path"]), source=batch.source, dropped=dropped,
                  findings=[*({"code": f.code, "severity": f.severity, "message": f.message}
                              for f in batch.findings), *report["findings"]],
                  model_sha256=card["sha256"])
    per_image = pd.concat([images, predictions[["predicted", "confidence"]]], axis=1)
    per_image["outlier_score"] = report.pop("outlier_scores")
    for finding in report["findings"]:
        log.warning("%s", finding["message"])
    write_csv(sm.output.images, per_image)
    plot_drift(reference_images, images, reference_predictions, predictions, report, sm.output.plot)
    atomic_write_text(sm.output.markdown, drift_markdown(name, report))
    write_json(sm.output.report, report)
    log.info("batch %s: drift in %s; recommendation: %s (%s)", name, ", ".join(report["drifting"]) or "no signal",
             report["recommendation"]["action"], report["recommendation"]["reason"])
