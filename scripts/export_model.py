"""The deployed model as TFLite files, measured against the Keras model (rule export_model)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
settings = sm.params.settings
with step("export_model", sm.log[0]) as log:
    info = runtime.configure(settings["seed"], sm.threads)
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from imgclf import export
    from imgclf.errors import ImgclfError
    from imgclf.io import atomic_write_bytes, atomic_write_text, read_index, sha256_file, write_json
    from imgclf.training.inputs import check_files, read_manifest
    from imgclf.training.predict import load_model

    formats = export.check_formats(settings["formats"])
    deployed = json.loads(Path(sm.input.deployed).read_text())
    classes, size, channels, fold = deployed["classes"], tuple(deployed["image_size"]), deployed["channels"], \
        deployed["fold"]
    train_path = next((p for p in sm.input.train_manifests if Path(p).parent.name == f"fold_{fold}"), None)
    if train_path is None:
        raise ImgclfError(f"the deployed model was trained on fold {fold}, which the split no longer has",
                          "rerun the final trainings (the split changed since)")
    # Only the drawn calibration images are read, so only theirs are checked against the manifest.
    train = read_manifest(train_path, sm.input.data_root, classes, verify=False)
    drawn = train.subset(export.representative_indices(train.labels, settings["representative_images"],
                                                       settings["seed"]))
    check_files(drawn.table, sm.input.data_root, train_path)
    representative = export.load_pixels(drawn, size, channels)
    test = read_manifest(sm.input.test, sm.input.data_root, classes)
    images = export.load_pixels(test, size, channels)
    groups = export.audit_groups(read_index(sm.input.index), test.table["path"],
                                 read_index(sm.input.audit_reference)["path"], settings["groups"])
    log.info("%d test images, %d int8 calibration images from %s; %d audit columns", len(images),
             len(representative), train_path, groups.shape[1])
    model = load_model(sm.input.model)
    reference = export.keras_proba(model, images)
    # The Keras model re-predicted here against the evaluation's own predictions of it.
    evaluated = pd.read_csv(sm.input.predictions, dtype={"path": str, "predicted": str}, keep_default_na=False,
                            na_values=[""])
    here = pd.Series(np.asarray(classes)[reference.argmax(axis=1)], index=test.table["path"])
    agreement = float((evaluated.set_index("path")["predicted"].reindex(here.index) == here).mean())
    if agreement < 1:
        log.warning("the Keras model's classes here agree with results/model/predictions.csv on %.4f of the "
                    "test images only (numerical differences between batch sizes)", agreement)
    contents, result = export.export_formats(
        model, formats, representative, images, test.labels, groups,
        settings["groups"]["audit"]["min_group_size"], settings["threads"], settings["latency_runs"], log,
        reference=reference)
    paths = dict(zip(formats, sm.output.tflite))
    for fmt, entry in result["formats"].items():
        entry["file"] = paths[fmt]
    result["keras"].update(file=sm.input.model, bytes=Path(sm.input.model).stat().st_size,
                           sha256=sha256_file(sm.input.model), agreement_with_evaluation=agreement)
    result.update(
        seed=deployed["chosen"]["seed"], fold=fold, classes=classes, image_size=list(size), channels=channels,
        n_test=len(images), group_columns=list(groups.columns),
        representative={"n": len(drawn.paths), "manifest": train_path, "seed": settings["seed"],
                        "per_class": {classes[c]: int(n) for c, n in zip(*np.unique(drawn.labels,
                                                                                  return_counts=True))}},
        latency={"threads": settings["threads"], "runs": settings["latency_runs"], "warmup": export.WARMUP_RUNS,
                 "cpu": info["cpu"], "tensorflow_threads": sm.threads},
        thresholds={"max_accuracy_drop": export.MAX_ACCURACY_DROP, "max_group_drop": export.MAX_GROUP_DROP,
                    "min_group_size": settings["groups"]["audit"]["min_group_size"]},
        tensorflow=info["tensorflow"])
    for finding in result["findings"]:
        log.warning("%s", finding["message"])
    # Everything converted and measured: only now is anything written.
    for fmt, content in contents.items():
        atomic_write_bytes(paths[fmt], content)
    atomic_write_text(sm.output.markdown, export.export_markdown(result))
    write_json(sm.output.export, result)
    log.info("%d formats exported; Keras model: accuracy %.4f, latency median %.3f ms", len(contents),
             result["keras"]["accuracy"], result["keras"]["latency_ms"]["median"])
