"""Rule deploy_model (stage evaluate): the final model chosen on validation, copied."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.evaluate import deploy_model  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "deploy_model") as log:
    write_outputs(sm.output, deploy_model(sm.input.models, sm.input.trainings, sm.input.evaluations,
                                          sm.input.histories, sm.input.curves, sm.input.predictions,
                                          sm.input.summary, sm.params.rule, sm.params.objective, log,
                                          {k.removeprefix("ensemble_"): sm.input[k] for k in sm.input.keys()
                                           if k.startswith("ensemble_")}))
