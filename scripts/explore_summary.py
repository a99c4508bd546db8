"""Summarise one exploration study (rule explore_summary)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

import pandas as pd

from imgclf.explore import answer, expand_study, points_table_markdown, summarize_study
from imgclf.explore_plots import plot_best_curves, plot_study
from imgclf.io import atomic_write_text, write_csv, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step(f"explore_summary {sm.wildcards.study}", sm.log[0]) as log:
    study = sm.params.study
    points = expand_study(study, sm.config["seed"])
    metrics = {p.id: json.loads(Path(m).read_text()) for p, m in zip(points, sm.input.metrics)}
    histories = {p.id: pd.read_csv(h) for p, h in zip(points, sm.input.histories)}
    summary = summarize_study(study, points, metrics, sm.config["explore"]["objective"])
    summary["answer"] = answer(summary)
    write_json(sm.output.summary, summary)
    write_csv(sm.output.table, pd.DataFrame(summary["rows"]))
    atomic_write_text(sm.output.markdown, points_table_markdown(summary))
    plot_study(summary, sm.output.plot)
    plot_best_curves(summary, histories, sm.output.best_curves)
    log.info("%s", summary["answer"])
    for flag in summary["edge_flags"]:
        log.warning("%s", flag)
