"""The evaluate stage's jobs that need no TensorFlow: what their scripts call (one function per rule).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.io import read_index, read_json
from imgclf.evaluate.agreement import agreed_errors
from imgclf.evaluate.metrics import (
    GLOBAL_METRICS,
    choose_deployed,
    ensemble_section,
    evaluation_markdown,
    flatten_metrics,
    headline_metrics,
    summarize_evaluation,
)
from imgclf.evaluate.plots import plot_confusion_matrix, plot_metrics_over_seeds
from imgclf.evaluate.thresholds import (labels_and_proba, operating_thresholds, sensitivity_targets,
                                        thresholded_metrics)

#: The metrics a seal, a deployed model's card and the log quote.
HEADLINE = ("n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece")


def evaluation_summary(evaluations: Sequence[str | Path], index: str | Path, targets: list[dict[str, Any]],
                       confidence: float, log: logging.Logger, test_predictions: Sequence[str | Path] = (),
                       validation_predictions: Sequence[str | Path] = (), ece_bins: int = 15,
                       apply_thresholds: bool = False, ensemble: str | Path | None = None) -> dict[str, Any]:
    """Rule evaluation_summary: the test metrics over seeds (mean, std, interval) and the targets.

    Args:
        evaluations: Each final model's test evaluation. index: The data's index (its classes).
        targets, confidence: The targets and the intervals' level.
        log: The job's logger.
        test_predictions, validation_predictions: Each model's saved predictions, in the same
            order: each sensitivity target gets an operating threshold chosen on validation
            (:mod:`imgclf.evaluate.thresholds`), reported on test.
        ece_bins, apply_thresholds: ``evaluation.ece_bins`` and ``evaluation.apply_thresholds``
            (the test metrics then use the thresholds).
        ensemble: The ensemble's test evaluation (``evaluation.deploy: ensemble``): its figures
            beside the single models' (``summary["ensemble"]``).

    Returns:
        ``summary``, ``headline`` (the figures ``dvc metrics`` shows), ``markdown``, ``per_seed``,
        ``confusion_matrix`` (summed over the models) and ``metrics_plot``.
    """
    per_seed = {}
    for path in evaluations:
        evaluation = read_json(path)
        per_seed[evaluation["seed"]] = evaluation
    classes = sorted(read_index(index)["label"].unique())
    # Each model's test predictions, read once: the thresholds and the agreed errors use them.
    tables = [pd.read_csv(path, dtype={"label": str, "predicted": str}) for path in test_predictions]
    if sensitivity_targets(targets, classes) and validation_predictions:
        for seed, table, val_path in zip(list(per_seed), tables, validation_predictions):
            test = labels_and_proba(table, classes)
            held = labels_and_proba(pd.read_csv(val_path, dtype={"label": str}), classes)
            chosen = operating_thresholds(targets, classes, *held, *test)
            metrics = per_seed[seed]["metrics"]
            if apply_thresholds:
                metrics = thresholded_metrics(metrics, *test, classes, chosen, ece_bins)
            per_seed[seed] = {**per_seed[seed], "metrics": {**metrics, "thresholds": {"applied": apply_thresholds,
                                                                                     "classes": chosen}}}
            for entry in chosen:
                if entry["threshold"] is not None:
                    plain, shifted = entry["test"]["plain"], entry["test"]["thresholded"]
                    log.info("seed %s: operating threshold for %s (sensitivity >= %g on validation): p >= %.4f; "
                             "test sensitivity %.4f (plain %.4f), specificity %.4f (plain %.4f)%s", seed,
                             entry["class"], entry["min"], entry["threshold"], shifted["sensitivity"],
                             plain["sensitivity"], shifted["specificity"], plain["specificity"],
                             "; applied" if apply_thresholds else "")
    summary = summarize_evaluation(per_seed, targets, classes, confidence)
    summary["agreed_errors"] = agreed_errors(tables)
    if summary["agreed_errors"]:
        agreed = summary["agreed_errors"]
        log.info("%d of %d test images misclassified by all %d models (%d of them confidently, with the same "
                 "answer): listed in summary.md for a label check", agreed["count"], agreed["n_test"],
                 agreed["models"], agreed["confident"])
    if ensemble is not None:
        summary["ensemble"] = ensemble_section(read_json(ensemble), summary["aggregate"], summary["targets"], classes)
        gains = summary["ensemble"]["metrics"]
        log.info("ensemble of %d models: test accuracy %.4f (single models' mean %.4f, gain %+.4f), balanced "
                 "accuracy %.4f (gain %+.4f)", len(summary["ensemble"]["members"]), gains["accuracy"]["ensemble"],
                 gains["accuracy"]["single_mean"], gains["accuracy"]["gain"], gains["balanced_accuracy"]["ensemble"],
                 gains["balanced_accuracy"]["gain"])
    rows = [{"seed": seed, "fold": e["fold"], **flatten_metrics(e["metrics"])} for seed, e in sorted(per_seed.items())]
    shown = list(GLOBAL_METRICS[:3]) + [t["metric_name"] for t in summary["targets"]
                                        if t["metric_name"] not in GLOBAL_METRICS[:3]]
    _log_summary(summary, len(per_seed), log)
    return {
        "summary": summary, "headline": headline_metrics(summary), "markdown": evaluation_markdown(summary),
        "per_seed": pd.DataFrame(rows),
        "confusion_matrix": plot_confusion_matrix(summary["confusion_matrix"], classes,
                                                  f"test set, summed over {len(per_seed)} final models"),
        "metrics_plot": plot_metrics_over_seeds(summary["aggregate"], shown, summary["targets"]),
    }


def _log_summary(summary: dict[str, Any], n_seeds: int, log: logging.Logger) -> None:
    accuracy = summary["aggregate"]["accuracy"]

    def fmt(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "n/a"

    log.info("test accuracy over %d seeds: mean %.4f, std %s, %.0f%% interval [%s, %s]", n_seeds,
             accuracy["mean"], fmt(accuracy["std"]), 100 * summary["confidence"], fmt(accuracy["low"]),
             fmt(accuracy["high"]))
    for target in summary["targets"]:
        log.info("target %s (min %s, max %s): mean %s -> %s; with confidence: %s", target["metric_name"],
                 target.get("min"), target.get("max"), target.get("mean"),
                 "MET" if target["met"] else "NOT MET", target["met_with_confidence"])
    if summary["reevaluations"]:
        log.warning("the sealed test set was evaluated again after changes for seeds %s (see summary.md)",
                    [e["seed"] for e in summary["reevaluations"]])


def deploy_model(models: Sequence[str], trainings: Sequence[str], evaluations: Sequence[str],
                 histories: Sequence[str], curves: Sequence[str], predictions: Sequence[str], summary: str | Path,
                 rule: str, objective: dict[str, str], log: logging.Logger,
                 ensemble: dict[str, str] | None = None) -> dict[str, Any]:
    """Rule deploy_model: choose one final model on validation (``evaluation.deploy``), never on
    the test set, and copy it with its run's curves and test predictions.

    Args:
        models, trainings, evaluations, histories, curves, predictions: One file per final model,
            in the same seed order.
        summary: The test summary. rule: ``evaluation.deploy``.
        objective: The resolved objective (:func:`imgclf.core.objectives.resolve_objective`): each
            seed's value at its best epoch is what the rule compares.
        log: The job's logger.
        ensemble: With ``rule`` ensemble: the ensemble's ``model``, ``card``, ``metrics`` and
            ``predictions`` (rule ensemble_model, evaluate_ensemble); the deployed files are its own,
            with the curves of its median member.

    Returns:
        ``model``, ``history``, ``curves`` and ``predictions`` (the chosen run's files, as bytes),
        and ``card`` (last): which seed and why, classes, input, its test metrics, the targets.
    """
    records = [read_json(p) for p in trainings]
    tested = {e["seed"]: e for e in (read_json(p) for p in evaluations)}
    monitor = objective["name"]
    validation = {t["seed"]: t["at_best_epoch"][monitor] for t in records
                  if t.get("at_best_epoch", {}).get(monitor) is not None and math.isfinite(t["at_best_epoch"][monitor])}
    if not validation:
        raise ImgclfError(f"no final model has a finite {monitor} at its best epoch, so none can be deployed by it",
                          "see the final trainings' histories (results/final/seed_*/history.csv)")
    log.info("deploying by %s (%s)", monitor, objective["why"])
    if rule == "ensemble":
        return _deploy_ensemble(records, validation, monitor, objective, histories, curves, summary, ensemble, log)
    choice = choose_deployed(validation, monitor, rule)
    choice["why_metric"] = objective["why"]
    seed = choice["seed"]
    rank = [t["seed"] for t in records].index(seed)
    training, model = records[rank], Path(models[rank]).read_bytes()
    aggregate = read_json(summary)
    test = tested[seed]["metrics"]
    log.info("deployed seed %d (%s: %s %.4f); its test accuracy %.4f", seed, choice["rule"], monitor,
             choice["value"], test["accuracy"])
    return {
        "model": model, "history": Path(histories[rank]).read_bytes(), "curves": Path(curves[rank]).read_bytes(),
        "predictions": Path(predictions[rank]).read_bytes(),
        "card": {
            "chosen": choice, "source": str(models[rank]), "sha256": hashlib.sha256(model).hexdigest(),
            "classes": training["classes"], "image_size": training["image_size"], "channels": training["channels"],
            "input": "float32 pixel values in [0, 255], shape (batch, height, width, channels); the model rescales",
            "validation": validation, "config": training["decisions"]["config"], "fold": training["fold"],
            "test": {k: test[k] for k in HEADLINE},
            "test_over_seeds": {k: aggregate["aggregate"][k] for k in ("accuracy", "balanced_accuracy")},
            "targets": aggregate["targets"], "all_targets_met": aggregate["all_targets_met"],
            # Chosen on this model's validation images; "test" above is its plain argmax evaluation.
            "operating_thresholds": aggregate.get("thresholds_per_seed", {}).get(str(seed))},
    }


def evaluate_ensemble(card: str | Path, evaluations: Sequence[str], predictions: Sequence[str], test: str | Path,
                      seal: str | Path, events: str | Path, unseal_reason: str | None, ece_bins: int,
                      log: logging.Logger) -> dict[str, Any]:
    """Rule evaluate_ensemble: the ensemble of the final models on the sealed test set, one
    evaluation like any other: checked against and recorded in a seal of its own
    (``seal/ensemble.json``) and the event log.

    Its probabilities are the mean of its members' sealed test probabilities (their
    ``predictions.csv``, 6 decimals): what the ensemble model computes, without reading the test
    images again (a test checks the model against this mean).

    Args:
        card: The ensemble's card (its members). evaluations, predictions: Each member's test
            evaluation and predictions, in seed order. test: The test manifest (its hash is sealed).
        seal, events: The ensemble's seal and the event log. unseal_reason: ``evaluation.unseal_reason``.
        ece_bins: Bins of the calibration error. log: The job's logger.

    Returns:
        ``predictions`` and ``metrics`` (last).

    Raises:
        SealedTestError: A member changed since the ensemble's evaluation, with no unseal reason.
    """
    from imgclf.core.io import sha256_file
    from imgclf.core.metrics import classification_metrics
    from imgclf.evaluate.metrics import predictions_table
    from imgclf.evaluate.seal import check_seal, read_seal, record_evaluation

    record = read_json(card)
    members = [read_json(p) for p in evaluations]
    seeds = [int(m["seed"]) for m in members]
    if seeds != [int(s) for s in record["members"]]:
        raise ImgclfError(f"the ensemble {card} holds seeds {record['members']}, the evaluations are of {seeds}",
                          "make the ensemble again (snakemake --forcerun ensemble_model)")
    current = {"members": {str(m["seed"]): m["decisions_sha256"] for m in members},
               "test_manifest_sha256": sha256_file(test)}
    event = check_seal(read_seal(seal), current, unseal_reason, "ensemble", "evaluation")
    classes = record["classes"]
    tables = [pd.read_csv(p, dtype={"label": str, "predicted": str, "group": str}, keep_default_na=False,
                          na_values=[""]) for p in predictions]
    for seed, table in zip(seeds[1:], tables[1:]):
        if not table["path"].equals(tables[0]["path"]):
            raise ImgclfError(f"the test predictions of seed {seed} do not list the images of seed {seeds[0]}'s",
                              "evaluate the final models again on the same test manifest")
    labels, _ = labels_and_proba(tables[0], classes)
    proba = sum(labels_and_proba(t, classes)[1] for t in tables) / len(tables)
    proba = proba / proba.sum(axis=1, keepdims=True)
    metrics = classification_metrics(labels, proba, classes, n_bins=ece_bins)
    sealed = record_evaluation(seal, events, "ensemble", current, event, {k: metrics[k] for k in HEADLINE})
    singles = [m["metrics"]["accuracy"] for m in members]
    log.info("ensemble of %d models: test accuracy %.4f, balanced accuracy %.4f (single models' accuracy %.4f to "
             "%.4f; evaluation %d of the ensemble, %s)", len(seeds), metrics["accuracy"], metrics["balanced_accuracy"],
             min(singles), max(singles), sealed["evaluations"], event["status"])
    manifest_table = tables[0][[c for c in ("path", "label", "group") if c in tables[0]]]
    return {"predictions": predictions_table(manifest_table, labels, proba, classes),
            "metrics": {"seed": "ensemble", "members": seeds, "classes": classes, "metrics": metrics,
                        "test_manifest_sha256": current["test_manifest_sha256"],
                        "seal": {**event, "evaluation": sealed["evaluations"]}}}


def _deploy_ensemble(records: list[dict[str, Any]], validation: dict[int, float], monitor: str,
                     objective: dict[str, str], histories: Sequence[str], curves: Sequence[str],
                     summary: str | Path, ensemble: dict[str, str] | None, log: logging.Logger) -> dict[str, Any]:
    """deploy_model for ``evaluation.deploy: ensemble``: the ensemble's files and card."""
    if not ensemble:
        raise ImgclfError("evaluation.deploy is ensemble, but the ensemble's files were not given",
                          "run the workflow's deploy_model rule, which makes them first")
    median = choose_deployed(validation, monitor, "median_validation")["seed"]
    rank = [t["seed"] for t in records].index(median)
    card, tested = read_json(ensemble["card"]), read_json(ensemble["metrics"])["metrics"]
    model = Path(ensemble["model"]).read_bytes()
    aggregate = read_json(summary)
    choice = {"seed": None, "members": card["members"], "rule": "ensemble", "monitor": monitor, "value": None,
              "why": f"the mean of the {len(card['members'])} final models' probabilities (seeds "
                     f"{', '.join(map(str, card['members']))}); its curves are those of seed {median}, the median "
                     f"by {monitor} on validation", "why_metric": objective["why"]}
    log.info("deployed the ensemble of seeds %s; its test accuracy %.4f", card["members"], tested["accuracy"])
    return {
        "model": model, "history": Path(histories[rank]).read_bytes(), "curves": Path(curves[rank]).read_bytes(),
        "predictions": Path(ensemble["predictions"]).read_bytes(),
        "card": {
            "chosen": choice, "source": str(ensemble["model"]), "sha256": hashlib.sha256(model).hexdigest(),
            "members": card["members"], "classes": card["classes"], "image_size": card["image_size"],
            "channels": card["channels"], "input": card["input"], "validation": validation,
            "config": records[rank]["decisions"]["config"],
            # The monitor's reference and the int8 calibration images come from this fold (its median
            # member's); with folds: rotate its validation images trained other members.
            "fold": records[rank]["fold"],
            "test": {k: tested[k] for k in HEADLINE},
            "test_over_seeds": {k: aggregate["aggregate"][k] for k in ("accuracy", "balanced_accuracy")},
            "targets": aggregate["targets"], "all_targets_met": aggregate["all_targets_met"],
            "operating_thresholds": None},
    }
