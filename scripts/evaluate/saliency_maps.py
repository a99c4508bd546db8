"""Rule saliency_maps (stage evaluate): what the deployed model looks at on test images (Grad-CAM)."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_outputs  # noqa: E402
from imgclf.evaluate import saliency_maps  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "saliency_maps") as log:
    write_outputs(sm.output, saliency_maps(sm.input.model, sm.input.deployed, sm.input.predictions, sm.input.index,
                                           sm.input.audit_reference, sm.input.data_root, sm.params.settings,
                                           sm.params.audit, sm.params.seed, JobResources.of(sm, "evaluate"), log))
