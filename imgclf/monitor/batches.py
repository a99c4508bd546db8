"""Drift monitoring of a new batch of images against the deployed model's reference.

A batch is a folder of images (flat: unlabelled; one sub-folder per class: labelled) or a CSV
manifest (a path column, a label column when labels are known). :func:`list_batch` lists it,
:func:`inspect_batch` reads every file as data validation does (a corrupt file stops the run or
is dropped, per ``monitor.on_bad_file``), and :func:`drift_report` compares the batch with the
reference, signal by signal (:mod:`imgclf.monitor.drift`), and recommends an action.

The reference is the deployed model's own data: its training images for the image statistics;
its validation images for the embeddings and the predictions, because the model fitted its
training images (their embeddings are tighter and their predictions more confident than those
of any unseen image, so an unshifted batch would look shifted against them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from imgclf.monitor import drift
# The batches are listed and read by the data package (the predict stage reads them too).
from imgclf.data import STAT_COLUMNS, Batch, inspect_batch, list_batch, stratified_draw  # noqa: F401

def _format_findings(batch: pd.DataFrame, reference: pd.DataFrame) -> list[dict[str, Any]]:
    """What the model does with images unlike its training images (they are still predicted)."""
    findings = []
    new_modes = sorted(set(batch["mode"]) - set(reference["mode"]))
    if new_modes:
        counts = batch["mode"].value_counts()
        findings.append({"code": "new_image_mode", "severity": "warning",
                         "message": f"{', '.join(f'{counts[m]} image(s) in mode {m}' for m in new_modes)}: no training image "
                                    "had this mode; converted to the model's channels like every image"})
    ref_sizes = reference[["width", "height"]].astype(int).drop_duplicates()
    sizes = batch[["width", "height"]].astype(int)
    other = sizes.merge(ref_sizes, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
    if other.any():
        example = sizes[other].iloc[0]
        findings.append({"code": "new_image_size", "severity": "warning",
                         "message": f"{int(other.sum())} image(s) have a size no training image had (e.g. "
                                    f"{example['width']}x{example['height']}); resized to the model's input "
                                    "like every image"})
    return findings


def drift_report(
    reference_images: pd.DataFrame,
    batch_images: pd.DataFrame,
    reference_embeddings: np.ndarray,
    batch_embeddings: np.ndarray,
    reference_predictions: pd.DataFrame,
    batch_predictions: pd.DataFrame,
    classes: list[str],
    baseline: dict[str, int],
    settings: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Every drift signal of a batch, with its verdict, and the recommendation.

    Args:
        reference_images: Image statistics of the training images (brightness, contrast,
            sharpness, width, height, mode).
        batch_images: The same of the batch, row for row with ``batch_predictions``.
        reference_embeddings: The deployed model's penultimate features of the validation images.
        batch_embeddings: The same of the batch.
        reference_predictions: ``predicted`` and ``confidence`` of the validation images.
        batch_predictions: ``predicted``, ``confidence`` and ``label`` (NA when unknown) of the batch.
        classes: The model's classes.
        baseline: The deployed model's test result: ``correct`` and ``n``.
        settings: The ``monitor`` config section (alpha, permutations, outlier_score, evolution_share).
        seed: Seeds the permutation test.

    Returns:
        ``signals`` (images, embeddings, predictions, performance: each with ``drift`` True,
        False or None), ``outliers``, ``recommendation``, ``findings`` and counts.
    """
    alpha = settings["alpha"]
    images = drift.image_drift(reference_images, batch_images, alpha)
    embeddings = drift.mmd_test(reference_embeddings, batch_embeddings, n_permutations=settings["permutations"],
                                seed=seed, max_samples=max(len(reference_embeddings), len(batch_embeddings)))
    embeddings["drift"] = None if embeddings["p_value"] is None else bool(embeddings["p_value"] < alpha)
    embeddings["alpha"] = alpha
    predictions = drift.prediction_drift(reference_predictions["predicted"], batch_predictions["predicted"],
                                         reference_predictions["confidence"], batch_predictions["confidence"],
                                         classes, alpha)
    labels = batch_predictions["label"]
    known = labels.notna() & labels.astype(str).isin(classes)
    unknown_labels = sorted(set(labels[labels.notna() & ~known].astype(str)))
    correct = (batch_predictions.loc[known, "predicted"].astype(str) == labels[known].astype(str)).to_numpy()
    if labels.notna().any():
        performance = drift.performance_drift(correct, baseline["correct"], baseline["n"], alpha)
        if known.any():
            per_class = (pd.DataFrame({"label": labels[known].astype(str), "correct": correct})
                         .groupby("label")["correct"].agg(["size", "mean"]))
            performance["recall_per_class"] = {c: {"n": int(r["size"]), "recall": float(r["mean"])}
                                               for c, r in per_class.iterrows()}
    else:
        performance = {"n": 0, "drift": None, "note": "the batch has no labels"}
    scores = drift.outlier_scores(reference_images, batch_images)
    outlier = scores >= settings["outlier_score"]
    signals = {"images": images, "embeddings": embeddings, "predictions": predictions, "performance": performance}
    recommendation = drift.recommend(signals, float(outlier.mean()), settings["evolution_share"], unknown_labels)
    findings = _format_findings(batch_images, reference_images)
    if unknown_labels:
        n_unknown = int((labels.notna() & ~known).sum())
        findings.append({"code": "unknown_label", "severity": "warning",
                         "message": f"{n_unknown} image(s) are labelled {', '.join(unknown_labels)}, not a class "
                                    "of the model: left out of the performance (a new class needs retraining "
                                    "with a new test set)"})
    return {
        "alpha": alpha,
        "n_images": int(len(batch_images)),
        "n_labelled": int(labels.notna().sum()),
        "n_reference": {"images": int(len(reference_images)), "embeddings": int(len(reference_embeddings))},
        "signals": signals,
        "drifting": [name for name, signal in signals.items() if signal.get("drift")],
        "outliers": {"threshold": settings["outlier_score"], "n": int(outlier.sum()), "share": float(outlier.mean()),
                     "worst": [{"path": batch_images["path"].iloc[i], "score": round(float(scores.iloc[i]), 2)}
                               for i in np.argsort(-scores.to_numpy(), kind="stable")[:10]
                               if scores.iloc[i] >= settings["outlier_score"]]},
        "recommendation": recommendation,
        "findings": findings,
        "outlier_scores": scores.round(4).tolist(),
    }


def _verdict(signal: dict[str, Any]) -> str:
    if signal.get("drift") is None:
        return "not measured"
    return "**DRIFT**" if signal["drift"] else "no drift"


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def drift_markdown(name: str, report: dict[str, Any]) -> str:
    """The drift report of one batch, for people."""
    s = report["signals"]
    rec = report["recommendation"]
    lines = [f"# Drift report: batch {name}", "",
             f"{report['n_images']} images ({report['n_labelled']} labelled) against the deployed model's reference "
             f"({report['n_reference']['images']} training images; {report['n_reference']['embeddings']} validation "
             f"images for the model's outputs); significance level {report['alpha']} per signal.", "",
             f"**Recommendation: {rec['action']}.** {rec['reason'][0].upper() + rec['reason'][1:]}.", "",
             "| signal | test | p-value | verdict |", "|---|---|---|---|",
             f"| images | KS per statistic (Bonferroni), chi-square of the modes | {_p(s['images']['p_value'])} | "
             f"{_verdict(s['images'])} |",
             f"| embeddings | MMD, {s['embeddings'].get('n_permutations', 0)} permutations | "
             f"{_p(s['embeddings']['p_value'])} | {_verdict(s['embeddings'])} |",
             f"| predictions | chi-square of the class mix, KS of the confidences (Bonferroni) | "
             f"{_p(s['predictions']['p_value'])} | {_verdict(s['predictions'])} |",
             f"| performance | one-sided Fisher exact test against the test accuracy | "
             f"{_p(s['performance'].get('p_value'))} | {_verdict(s['performance'])} |", "",
             "## Image statistics", "", "| statistic | reference median | batch median | p (adjusted) |",
             "|---|---|---|---|"]
    for column, test in s["images"]["tests"].items():
        if column == "mode":
            lines.append(f"| mode | {test['reference_share']} | {test['batch_share']} | {_p(test['p_adjusted'])} |")
        else:
            lines.append(f"| {column} | {test['reference_median']:.4g} | {test['batch_median']:.4g} | "
                         f"{_p(test['p_adjusted'])} |")
    o = report["outliers"]
    lines += ["", f"Outliers (a statistic {o['threshold']} robust standard deviations or more from the reference "
                  f"median): {o['n']} ({100 * o['share']:.0f}%)."]
    if o["worst"]:
        lines += [", ".join(f"`{w['path']}` ({w['score']})" for w in o["worst"][:5])]
    mix = s["predictions"]["class_mix"]
    lines += ["", "## Predictions", "", "| class | validation share | batch share |", "|---|---|---|"]
    lines += [f"| {c} | {mix['reference_share'][c]:.3f} | {mix['batch_share'][c]:.3f} |" for c in mix["reference_share"]]
    conf = s["predictions"]["confidence"]
    lines += ["", f"Median confidence: {conf['reference_median']:.3f} on the validation images, "
                  f"{conf['batch_median']:.3f} on the batch."]
    perf = s["performance"]
    if perf.get("n"):
        base = perf["baseline"]
        lines += ["", "## Performance", "",
                  f"Accuracy {perf['accuracy']:.3f} [{perf['low']:.3f}, {perf['high']:.3f}] on {perf['n']} labelled "
                  f"images, against {base['accuracy']:.3f} [{base['low']:.3f}, {base['high']:.3f}] on the "
                  f"{base['n']} test images (Wilson {100 * perf['confidence']:.0f}% intervals)."]
    if report["findings"]:
        lines += ["", "## Findings", ""] + [f"- {f['severity']}: {f['message']}" for f in report["findings"]]
    if rec["action"] in drift.RETRAIN_MODE:
        lines += ["", "To retrain: label the batch, then `python -m imgclf.retrain --batch <labelled folder> "
                      f"--name {name} --mode {drift.RETRAIN_MODE[rec['action']]}` "
                      "(docs/retraining.md)."]
    return "\n".join(lines) + "\n"
