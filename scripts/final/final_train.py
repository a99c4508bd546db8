"""Rule final_train (stage final): the chosen configuration trained with one seed."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_outputs  # noqa: E402
from imgclf.final import final_train  # noqa: E402
from imgclf.training.files import RunFiles, TrainingInputs  # noqa: E402

sm = snakemake  # noqa: F821
seed = int(sm.wildcards.seed)
with job(sm.log[0], f"final_train seed {seed}") as log:
    write_outputs(sm.output, final_train(
        sm.params.config, seed, sm.params.fold, TrainingInputs.of(sm.input), RunFiles.of(sm.output, sm.params),
        sm.input.get("best_hyperparameters"), sm.input.get("batch_size"), JobResources.of(sm, "final"), sm.config["carbon"],
        sm.params.emissions, log, sm.input.get("pretrained_weights")))
