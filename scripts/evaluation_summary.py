"""Aggregate the test metrics over seeds and check the targets (rule evaluation_summary)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

import pandas as pd

from imgclf.evaluation import (GLOBAL_METRICS, evaluation_markdown, flatten_metrics, headline_metrics,
                               summarize_evaluation)
from imgclf.evaluation_plots import plot_confusion_matrix, plot_metrics_over_seeds
from imgclf.io import atomic_write_text, read_index, write_csv, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("evaluation_summary", sm.log[0]) as log:
    per_seed = {}
    for path in sm.input.evaluations:
        evaluation = json.loads(Path(path).read_text())
        per_seed[evaluation["seed"]] = evaluation
    classes = sorted(read_index(sm.input.index)["label"].unique())
    summary = summarize_evaluation(per_seed, sm.params.targets, classes, sm.params.confidence)
    write_json(sm.output.summary, summary)
    write_json(sm.output.headline, headline_metrics(summary))
    atomic_write_text(sm.output.markdown, evaluation_markdown(summary))
    rows = [{"seed": seed, "fold": e["fold"], **flatten_metrics(e["metrics"])} for seed, e in sorted(per_seed.items())]
    write_csv(sm.output.per_seed, pd.DataFrame(rows))
    plot_confusion_matrix(summary["confusion_matrix"], classes,
                          f"test set, summed over {len(per_seed)} final models", sm.output.confusion_matrix)
    plot_metrics_over_seeds(summary["aggregate"], list(GLOBAL_METRICS[:3])
                            + [t["metric_name"] for t in summary["targets"] if t["metric_name"] not in GLOBAL_METRICS[:3]],
                            summary["targets"], sm.output.metrics_plot)
    accuracy = summary["aggregate"]["accuracy"]
    log.info("test accuracy over %d seeds: mean %.4f, std %s, %.0f%% interval [%s, %s]", len(per_seed),
             accuracy["mean"], f"{accuracy['std']:.4f}" if accuracy["std"] is not None else "n/a",
             100 * summary["confidence"], *(f"{accuracy[k]:.4f}" if accuracy[k] is not None else "n/a"
                                            for k in ("low", "high")))
    for target in summary["targets"]:
        log.info("target %s (min %s, max %s): mean %s -> %s; with confidence: %s", target["metric_name"],
                 target.get("min"), target.get("max"), target.get("mean"),
                 "MET" if target["met"] else "NOT MET", target["met_with_confidence"])
    if summary["reevaluations"]:
        log.warning("the sealed test set was evaluated again after changes for seeds %s (see summary.md)",
                    [e["seed"] for e in summary["reevaluations"]])
