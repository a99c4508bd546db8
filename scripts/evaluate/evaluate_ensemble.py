"""Rule evaluate_ensemble (stage evaluate): the ensemble of the final models on the sealed test set."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.evaluate import evaluate_ensemble  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "evaluate_ensemble") as log:
    write_outputs(sm.output, evaluate_ensemble(sm.input.card, sm.input.evaluations, sm.input.predictions, sm.input.test,
                                               sm.params.seal, sm.params.events, sm.params.unseal_reason,
                                               sm.params.ece_bins, log))
