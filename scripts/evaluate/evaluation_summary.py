"""Rule evaluation_summary (stage evaluate): the test metrics over seeds and the targets."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.evaluate import evaluation_summary  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "evaluation_summary") as log:
    write_outputs(sm.output, evaluation_summary(sm.input.evaluations, sm.input.index, sm.params.targets,
                                                sm.params.confidence, log, sm.input.predictions,
                                                sm.input.validation_predictions, sm.params.ece_bins,
                                                sm.params.apply_thresholds, sm.input.get("ensemble")))
