"""Rule check_seal (stage final): refuse to retrain a sealed model whose decisions changed."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.final import check_seal  # noqa: E402

sm = snakemake  # noqa: F821
seed = int(sm.wildcards.seed)
with job(sm.log[0], f"check_seal seed {seed}") as log:
    # The unseal reason is read from the config, not a param: setting it must not retrain anything.
    write_outputs(sm.output, check_seal(sm.params.config, seed, sm.input.train, sm.input.val,
                                        sm.input.get("best_hyperparameters"), sm.params.seal,
                                        sm.config["evaluation"]["unseal_reason"], sm.input.get("batch_size"),
                                        sm.params.threads, sm.input.get("pretrained_weights"), log))
