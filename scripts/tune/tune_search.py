"""Rule tune_search (stage tune): the Bayesian search on one fold."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_outputs  # noqa: E402
from imgclf.tune import tune_search  # noqa: E402
from imgclf.training.files import TrainingInputs  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "tune_search") as log:
    write_outputs(sm.output, tune_search(sm.config, TrainingInputs.of(sm.input), sm.input.get("batch_size"),
                                         sm.input.get("study_summary"), sm.params.tuner_dir, JobResources.of(sm, "tune"),
                                         sm.params.emissions, log))
