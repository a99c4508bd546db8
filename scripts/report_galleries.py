"""Image grids for the report: samples per class, confident mistakes (rule report_galleries)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
import re
from pathlib import Path

import pandas as pd

from imgclf.io import read_index
from imgclf.report.gallery import confident_mistakes, plot_class_samples, plot_mistakes, sample_per_class
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("report_galleries", sm.log[0]) as log:
    settings = sm.params.settings
    samples = sample_per_class(read_index(sm.input.train), settings["samples_per_class"], sm.params.seed)
    plot_class_samples(samples, sm.input.data_root, sm.output.samples_plot, settings["samples_per_class"])
    deployed = json.loads(Path(sm.input.model_card).read_text())["chosen"]["seed"]
    predictions = {int(re.search(r"seed_(\d+)", p).group(1)): p for p in sm.input.predictions}
    table = pd.read_csv(predictions[deployed], dtype={"label": str, "predicted": str, "path": str})
    mistakes = confident_mistakes(table, settings["mistakes"])
    n_wrong = int((table["label"] != table["predicted"]).sum())
    plot_mistakes(mistakes, sm.input.data_root, sm.output.mistakes_plot,
                  f"Deployed model (seed {deployed}): {len(mistakes)} of its {n_wrong} mistakes on "
                  f"{len(table)} test images, most confident first")
    log.info("%d sample images; %d of %d mistakes shown", len(samples), len(mistakes), n_wrong)
