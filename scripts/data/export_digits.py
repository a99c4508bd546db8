"""Rule export_digits (stage data): scikit-learn's digits as an image folder."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job  # noqa: E402
from imgclf.data import write_digit_folder  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "export_digits") as log:
    count = write_digit_folder(sm.output.image_folder, sm.params.size)
    log.info("wrote %d digit images to %s", count, sm.output.image_folder)
