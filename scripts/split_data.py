"""Split the index into a test set and K folds (rule split_data)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821


from imgclf.io import read_index, sha256_file, write_csv, write_json
from imgclf.scripting import step
from imgclf.split import SplitOptions, make_split

sm = snakemake  # noqa: F821
with step("split_data", sm.log[0]) as log:
    options = SplitOptions.from_config(sm.config)
    # split.sealed_test: an earlier test manifest whose images stay the test set (retraining).
    sealed_path = sm.input.get("sealed_test")
    sealed = read_index(sealed_path) if sealed_path else None
    split = make_split(read_index(sm.input.index), options, sealed)
    for warning in split.warnings:
        log.warning("%s", warning)
    summary = dict(split.summary, index_sha256=sha256_file(sm.input.index))
    if sealed_path:
        summary["sealed_test"] = dict(summary["sealed_test"], manifest_sha256=sha256_file(sealed_path))
        log.info("sealed test set: %d image(s) from %s; %d image(s) left out of the folds",
                 len(split.test), sealed_path, summary["sealed_test"]["n_dropped"])
    # Manifests first, the summary last: its presence marks a complete split.
    write_csv(sm.output.test, split.test)
    for k, (train, val) in enumerate(split.folds):
        write_csv(sm.output.train[k], train)
        write_csv(sm.output.val[k], val)
    write_json(sm.output.summary, summary)
    log.info("test: %d images; %d fold(s) of train %s / val %s; leak check passed",
             len(split.test), len(split.folds), [len(t) for t, _ in split.folds],
             [len(v) for _, v in split.folds])
