"""Rule explore_point (stage explore): one training run of a study's point."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_outputs  # noqa: E402
from imgclf.explore import explore_point  # noqa: E402
from imgclf.training.files import RunFiles, TrainingInputs  # noqa: E402

sm = snakemake  # noqa: F821
study, point = sm.wildcards.study, sm.wildcards.point
with job(sm.log[0], f"explore_point {study}/{point}") as log:
    write_outputs(sm.output, explore_point(
        sm.params.config, study, point, sm.params.overrides, sm.params.label, TrainingInputs.of(sm.input),
        RunFiles.of(sm.output, sm.params), sm.input.get("batch_size"), JobResources.of(sm, "explore"), sm.config["carbon"],
        sm.params.emissions, log))
