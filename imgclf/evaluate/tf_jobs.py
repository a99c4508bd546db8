"""The evaluate stage's TensorFlow jobs: what their scripts call (one function per rule).

Each configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.carbon import track_emissions
from imgclf.core import runtime
from imgclf.core.io import read_json, sha256_file
from imgclf.evaluate.jobs import HEADLINE
from imgclf.core.metrics import classification_metrics
from imgclf.evaluate.metrics import GLOBAL_METRICS, predictions_table
from imgclf.evaluate.plots import plot_confusion_matrix
from imgclf.core.job import JobResources
from imgclf.evaluate.seal import check_seal, read_seal, record_evaluation


def evaluate_model(seed: int, model: str | Path, training: str | Path, test: str | Path, data_root: str | Path,
                   ece_bins: int, seal: str | Path, events: str | Path, unseal_reason: str | None,
                   resources: JobResources,
                   carbon: dict[str, Any], emissions: str | Path, log: logging.Logger,
                   validation: str | Path | None = None, tta: bool = False) -> dict[str, Any]:
    """Rule evaluate_model: one final model on the sealed test set, once.

    The seal is checked before the test manifest's images are read; the evaluation is then
    recorded in the model's seal and appended to the event log (neither is an output: they
    outlive reruns).

    Args:
        seed: The final model's seed. model, training: Its model and training record.
        test: The test manifest. data_root: The images' folder.
        ece_bins: Bins of the calibration error.
        seal, events: The model's seal and the event log.
        unseal_reason: ``evaluation.unseal_reason``.
        resources, carbon, emissions: The job's threads and CPUs, the carbon settings, its emissions
            record.
        log: The job's logger.
        validation: The model's validation manifest: its predictions there are where the summary
            chooses operating thresholds (:mod:`imgclf.evaluate.thresholds`), never on the test set.
        tta: ``evaluation.tta``: the metrics also under test-time augmentation (``metrics["tta"]``:
            the global metrics of the probabilities averaged over the image and its two mirrors).

    Returns:
        ``predictions``, ``validation_predictions`` (with a validation manifest),
        ``confusion_matrix`` and ``metrics`` (last).

    Raises:
        SealedTestError: The decisions behind the model changed since its evaluation and no
            unseal reason is given.
    """
    with track_emissions(emissions, "evaluate", f"seed_{seed}", carbon, log):
        runtime.configure(seed, resources.threads, resources.cpus)
        from imgclf.training.inputs import read_manifest
        from imgclf.training.predict import load_model, predict_proba, predict_proba_tta

        record = read_json(training)
        current = {**record["decisions"], "test_manifest_sha256": sha256_file(test)}
        event = check_seal(read_seal(seal), current, unseal_reason, seed, "evaluation")
        if event["status"] == "unsealed":
            log.warning("TEST SET UNSEALED for seed %d: evaluated again after these changes: %s; reason given: %s",
                        seed, ", ".join(c["key"] for c in event["changes"]), event["reason"])
        classes = record["classes"]
        manifest = read_manifest(test, data_root, classes)
        network = load_model(model)
        proba = predict_proba(network, manifest, tuple(record["image_size"]), record["channels"],
                              record["batch_size"])
        metrics = classification_metrics(manifest.labels, proba, classes, n_bins=ece_bins)
        if tta:
            mirrored = predict_proba_tta(network, manifest, tuple(record["image_size"]), record["channels"],
                                         record["batch_size"], plain=proba)
            with_tta = classification_metrics(manifest.labels, mirrored, classes, n_bins=ece_bins)
            metrics["tta"] = {k: with_tta[k] for k in GLOBAL_METRICS}
            log.info("seed %d with test-time augmentation (flips): accuracy %.4f, balanced accuracy %.4f "
                     "(plain: %.4f, %.4f)", seed, with_tta["accuracy"], with_tta["balanced_accuracy"],
                     metrics["accuracy"], metrics["balanced_accuracy"])
        outputs = {}
        if validation is not None:
            held = read_manifest(validation, data_root, classes)
            val_proba = predict_proba(network, held, tuple(record["image_size"]), record["channels"],
                                      record["batch_size"])
            outputs["validation_predictions"] = predictions_table(held.table, held.labels, val_proba, classes)
        sealed = record_evaluation(seal, events, seed, current, event, {k: metrics[k] for k in HEADLINE})
    log.info("seed %d: test accuracy %.4f, balanced accuracy %.4f, log loss %.4f, ECE %.4f (%d images; "
             "evaluation %d of this model, %s)", seed, metrics["accuracy"], metrics["balanced_accuracy"],
             metrics["log_loss"], metrics["ece"], metrics["n"], sealed["evaluations"], event["status"])
    return {
        "predictions": predictions_table(manifest.table, manifest.labels, proba, classes), **outputs,
        "confusion_matrix": plot_confusion_matrix(
            metrics["confusion_matrix"], classes,
            f"final seed {seed}: test accuracy {metrics['accuracy']:.4f} (n = {metrics['n']})"),
        "metrics": {"seed": seed, "fold": record["fold"], "classes": classes, "metrics": metrics,
                    "decisions_sha256": record["decisions_sha256"],
                    "test_manifest_sha256": current["test_manifest_sha256"],
                    "seal": {**event, "evaluation": sealed["evaluations"],
                             "unsealed": [h for h in sealed["history"] if h["status"] == "unsealed"]}}}


def ensemble_model(models: list[str], trainings: list[str], log: logging.Logger) -> dict[str, Any]:
    """Rule ensemble_model: the final models as one model that averages their probabilities
    (:mod:`imgclf.training.ensemble`), with its card.

    Args:
        models, trainings: Each final model and its training record, in the same seed order.
        log: The job's logger.

    Returns:
        ``model`` (the ``.keras`` file's bytes) and ``card`` (last): the members' seeds, folds and
        decisions, the classes, the input, and the file's sha256.
    """
    import hashlib
    import tempfile

    records = [read_json(p) for p in trainings]
    runtime.configure(records[0]["seed"], 1)
    from imgclf.training.ensemble import build_ensemble
    from imgclf.training.predict import load_model

    for record in records[1:]:
        for key in ("classes", "image_size", "channels"):
            if record[key] != records[0][key]:
                from imgclf.core.errors import ImgclfError

                raise ImgclfError(f"the final models of seeds {records[0]['seed']} and {record['seed']} differ in "
                                  f"{key}: they cannot form an ensemble", "train them again from one config")
    seeds = [int(r["seed"]) for r in records]
    ensemble = build_ensemble([load_model(p) for p in models], seeds)
    with tempfile.TemporaryDirectory(prefix="imgclf-ensemble-") as folder:
        path = Path(folder) / "model.keras"
        ensemble.save(path)
        content = path.read_bytes()
    log.info("ensemble of %d final models (seeds %s): %d parameters", len(seeds), ", ".join(map(str, seeds)),
             ensemble.count_params())
    first = records[0]
    return {"model": content, "card": {
        "members": seeds, "folds": {str(r["seed"]): r["fold"] for r in records},
        "decisions_sha256": {str(r["seed"]): r["decisions_sha256"] for r in records},
        "sources": list(map(str, models)), "sha256": hashlib.sha256(content).hexdigest(),
        "classes": first["classes"], "image_size": first["image_size"], "channels": first["channels"],
        "input": "float32 pixel values in [0, 255], shape (batch, height, width, channels); the model rescales",
        "parameters": int(ensemble.count_params())}}


def saliency_maps(model: str | Path, deployed: str | Path, predictions: str | Path, index: str | Path,
                  audit_reference: str | Path, data_root: str | Path, settings: dict[str, Any],
                  audit: dict[str, Any], seed: int, resources: JobResources, log: logging.Logger) -> dict[str, Any]:
    """Rule saliency_maps: what the deployed model looks at on test images (Grad-CAM,
    :mod:`imgclf.evaluate.saliency`): the report's grid, and the border share per class and per
    audit group, with a warning for a class whose saliency sits on the image's border.

    The deployed model is sealed and its test predictions written: this explains them and
    decides nothing (no metric, no choice), like the TFLite export's measurements.

    Args:
        model, deployed, predictions: The deployed model, its card and its test predictions.
        index: The index (the images' group columns). audit_reference: The manifest whose images
            set the audit's image-slice edges. data_root: The images' folder.
        settings: ``evaluation.saliency`` (images, per_class, margin).
        audit: What the bias audit reads of the config: the border shares are summarised per
            audited group (metadata columns binned, image slices), as the audit cuts them.
        seed: The experiment's seed (the stratified draw). resources: The job's threads and CPUs.
        log: The job's logger.

    Returns:
        ``border_shares`` (one row per image), ``gallery`` (the grid) and ``saliency`` (last).
    """
    runtime.configure(seed, resources.threads, resources.cpus)
    import numpy as np
    import pandas as pd

    from imgclf.audit import audit_group_table
    from imgclf.core.config import validate_config
    from imgclf.core.io import read_index
    from imgclf.data import stratified_draw
    from imgclf.evaluate import saliency
    from imgclf.evaluate.plots import plot_saliency_gallery
    from imgclf.training.ensemble import ensemble_members
    from imgclf.training.inputs import Manifest, make_dataset
    from imgclf.training.predict import load_model

    card = read_json(deployed)
    classes, size, channels = card["classes"], tuple(card["image_size"]), int(card["channels"])
    table = pd.read_csv(predictions, dtype={"label": str, "predicted": str, "path": str}, keep_default_na=False,
                        na_values=[""])
    picks = saliency.gallery_picks(table, classes, settings["per_class"])
    drawn = stratified_draw(table, settings["images"], seed)
    chosen = table[table["path"].isin(set(drawn["path"]) | set(picks["path"]))].reset_index(drop=True)
    labels = chosen["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int32)
    manifest = Manifest([str(Path(data_root) / p) for p in chosen["path"]], labels, chosen)
    pixels = np.concatenate([x.numpy() for x, _ in make_dataset(manifest, size, channels, 32, training=False, seed=0,
                                                                 cache=False)])
    network = load_model(model)
    members = ensemble_members(network)
    # An ensemble's maps are its members' averaged: the layer named is its first member's.
    layer = saliency.last_conv_layer(members[0] if members else network)
    predicted = chosen["predicted"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    heat = saliency.grad_cam(network, pixels, predicted)
    chosen["border_share"] = saliency.border_share(heat, settings["margin"]).round(6)
    chosen["in_statistics"] = chosen["path"].isin(set(drawn["path"]))
    groups = audit_group_table(read_index(index), read_index(audit_reference)["path"],
                               validate_config(dict(audit), source="the audit settings"))
    columns = list(groups.columns)
    for column in columns:
        chosen[column] = chosen["path"].map(groups[column]).astype(str)
    statistics = chosen[chosen["in_statistics"]]
    per_class = saliency.border_summary(statistics, "label")
    uniform = saliency.area_share(size[0], size[1], settings["margin"])
    findings = saliency.border_findings(per_class, uniform, margin=settings["margin"])
    for finding in findings:
        log.warning("%s", finding["message"])
    position = {p: i for i, p in enumerate(chosen["path"])}
    shown = picks.merge(chosen[["path", "border_share"]], on="path", how="left")
    overlays = [saliency.overlay(pixels[position[p]], heat[position[p]]) for p in shown["path"]]
    what = f"ensemble of {len(card['members'])}" if card.get("members") else f"seed {card['chosen']['seed']}"
    log.info("Grad-CAM at %s of the deployed model (%s) on %d test images (%d for the statistics): border share "
             "per class %s (a uniform map: %.2f)", layer.name, what, len(chosen), len(statistics),
             ", ".join(f"{r['label']} {r['mean_border_share']:.2f}" for _, r in per_class.iterrows()), uniform)
    keep = ["path", "label", "predicted", "correct", "confidence", "border_share", "in_statistics", *columns]
    return {
        "border_shares": chosen[[c for c in keep if c in chosen.columns]],
        "gallery": plot_saliency_gallery(shown, overlays, classes, settings["per_class"],
                                         f"Grad-CAM of the deployed model ({what}) at {layer.name}: per class, its "
                                         "most confident correct predictions, then its most confident mistakes"),
        "saliency": {"method": "Grad-CAM", "layer": layer.name, "model": what, "margin": settings["margin"],
                     "uniform_border_share": uniform, "n_images": int(len(statistics)),
                     "per_class": per_class.to_dict(orient="records"),
                     "per_group": {c: saliency.border_summary(statistics, c).astype(object).to_dict(orient="records")
                                   for c in columns},
                     "findings": findings},
    }
