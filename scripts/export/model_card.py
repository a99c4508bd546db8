"""Rule model_card (stage export): the deployed model's card."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.export import model_card  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "model_card") as log:
    write_outputs(sm.output, model_card(
        sm.input.model, sm.input.deployed, sm.input.evaluation, sm.input.split, sm.input.validation,
        sm.input.audit_data, sm.input.audit_groups, sm.input.carbon, sm.input.get("export"),
        sm.params.intended_use, sm.params.limitations, log))
