"""Rule export_model (stage export): the deployed model as TFLite files, measured."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.export import export_model  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "export_model") as log:
    write_outputs(sm.output, export_model(
        sm.input.model, sm.input.deployed, sm.input.train_manifests, sm.input.audit_reference, sm.input.test,
        sm.input.predictions, sm.input.index, sm.input.data_root, sm.params.settings, sm.output.tflite,
        sm.threads, log))
