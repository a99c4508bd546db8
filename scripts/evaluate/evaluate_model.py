"""Rule evaluate_model (stage evaluate): one final model on the sealed test set.

The only script that reads the test manifest.
"""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_outputs  # noqa: E402
from imgclf.evaluate import evaluate_model  # noqa: E402

sm = snakemake  # noqa: F821
seed = int(sm.wildcards.seed)
with job(sm.log[0], f"evaluate_model seed {seed}") as log:
    write_outputs(sm.output, evaluate_model(
        seed, sm.input.model, sm.input.training, sm.input.test, sm.input.data_root, sm.params.ece_bins,
        sm.params.seal, sm.params.events, sm.config["evaluation"]["unseal_reason"], JobResources.of(sm, "evaluate"),
        sm.config["carbon"], sm.params.emissions, log, sm.input.validation, sm.params.tta))
