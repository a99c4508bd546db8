"""Rule ensemble_model (stage evaluate): the final models as one model averaging their probabilities."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.evaluate import ensemble_model  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "ensemble_model") as log:
    write_outputs(sm.output, ensemble_model(list(sm.input.models), list(sm.input.trainings), log))
