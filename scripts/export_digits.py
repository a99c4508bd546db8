"""Export scikit-learn's digits as an image folder (rule export_digits)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import shutil
import tempfile
from pathlib import Path

from imgclf.digits import digit_images
from imgclf.scripting import step

with step("export_digits", snakemake.log[0]) as log:  # noqa: F821
    out = Path(snakemake.output.image_folder)  # noqa: F821
    # Build next to the target, then rename: the folder appears whole or not at all.
    staging = Path(tempfile.mkdtemp(prefix=".digits.", dir=out.parent))
    count = 0
    for relpath, image in digit_images(snakemake.params.size):  # noqa: F821
        target = staging / relpath
        target.parent.mkdir(exist_ok=True)
        image.save(target, format="PNG", optimize=False)
        count += 1
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    log.info("wrote %d digit images to %s", count, out)
