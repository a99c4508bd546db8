"""The deployed model's reference for drift monitoring (rule monitor_reference).

Training images' statistics (from the index), and the model's embeddings and predictions of
a seeded, stratified draw of its validation images.
"""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import io
import json
from pathlib import Path

from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
with step("monitor_reference", sm.log[0]) as log:
    runtime.configure(sm.params.seed, sm.threads)
    import numpy as np
    import pandas as pd

    from imgclf.io import atomic_write_bytes, read_index, write_csv
    from imgclf.monitor import STAT_COLUMNS, stratified_draw
    from imgclf.training.inputs import check_files, read_manifest
    from imgclf.training.predict import load_model, predict_with_embeddings

    card = json.loads(Path(sm.input.card).read_text())
    fold, classes = card["fold"], card["classes"]
    index = read_index(sm.input.index)
    train = read_index(sm.input.train[fold])
    statistics = index[index["path"].isin(set(train["path"]))]
    write_csv(sm.output.statistics, statistics[[c for c in STAT_COLUMNS if c in statistics]])
    # Only the drawn images are read, so only theirs are checked against the manifest.
    val = read_manifest(sm.input.val[fold], sm.input.data_root, classes, verify=False)
    drawn = stratified_draw(val.table, sm.params.reference_images, sm.params.seed)
    keep = val.table.reset_index().merge(drawn[["path"]], on="path")["index"].to_numpy()
    manifest = val.subset(keep)
    check_files(manifest.table, sm.input.data_root, sm.input.val[fold])
    model = load_model(sm.input.model)
    embeddings, proba = predict_with_embeddings(model, manifest, tuple(card["image_size"]), card["channels"], 64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, embeddings=embeddings)
    atomic_write_bytes(sm.output.embeddings, buffer.getvalue())
    write_csv(sm.output.predictions, pd.DataFrame({
        "path": manifest.table["path"].to_numpy(), "label": manifest.table["label"].to_numpy(),
        "predicted": [classes[i] for i in proba.argmax(1)], "confidence": proba.max(1).round(6)}))
    log.info("reference: %d training images' statistics (fold %d); embeddings (%d features) and predictions "
             "of %d of its %d validation images", len(statistics), fold, embeddings.shape[1], len(keep),
             len(val.paths))
