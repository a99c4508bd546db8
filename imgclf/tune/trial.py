"""One tuning trial, trained in a process of its own.

TensorFlow keeps memory from every ``model.fit`` in a process, even across
``keras.backend.clear_session()`` (tensorflow/tensorflow#61791): in one
process, resident memory grew by about 17 MB per trial on the digits. The
tuner (:mod:`imgclf.tune.search`) therefore runs each trial as
``python -m imgclf.tune.trial request.json result.json``: the request holds
the trial's config and the data, the result its history. Memory is then flat
over trials by construction, and a trial's weights depend only on its seed
and values, not on the trials before it.

The trial trains as a final training does: phase 1 (the head on a frozen
pretrained backbone, or the whole model from scratch), then, when enabled,
phase 2 (fine-tuning the top layers at a low rate), with early stopping and
learning-rate reduction.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def train_trial(request: dict[str, Any]) -> dict[str, Any]:
    """Train one trial and return its history (lists per metric) and its memory figures.

    Args:
        request: ``config`` (the trial's config), ``train_manifest``, ``val_manifest``,
            ``data_root``, ``classes``, ``image_size``, ``channels``, ``batch_size``,
            ``objective``, ``seed``, ``threads`` and the job's ``cpus`` and ``job_memory_mb``.

    Raises:
        ConfigError: The objective is never computed.
    """
    from imgclf.core import runtime

    runtime.configure(request["seed"], request["threads"], request.get("cpus"))
    from imgclf.core.errors import ConfigError
    from imgclf.core.objectives import known_names
    from imgclf.training.cache import job_cache, resolve_cache
    from imgclf.training.devices import strategy_scope, training_devices
    from imgclf.training.inputs import read_manifest

    train = request["config"]["train"]
    size, channels, classes = tuple(request["image_size"]), request["channels"], request["classes"]
    # The parent checked every file's sha256 before the search.
    train_manifest = read_manifest(request["train_manifest"], request["data_root"], classes, verify=False)
    val_manifest = read_manifest(request["val_manifest"], request["data_root"], classes, verify=False)
    devices = training_devices(train["gpus_per_job"])
    plan = resolve_cache(train, len(train_manifest.paths) + len(val_manifest.paths), size, channels,
                         request.get("job_memory_mb"))
    with job_cache(plan) as cache, strategy_scope(devices):
        history = _fit_trial(request, train_manifest, val_manifest, cache)
    objective = request["objective"]
    if objective not in history:
        raise ConfigError(f"tune.objective {objective!r} is never computed "
                          f"(computed: {', '.join(sorted(history))})", f"use one of {', '.join(known_names())}")
    return {"history": {k: [float(v) for v in values] for k, values in history.items()},
            "peak_rss_mb": runtime.memory_mb()["peak_rss_mb"], "pid": os.getpid()}


def _fit_trial(request: dict[str, Any], train_manifest: Any, val_manifest: Any, cache: bool | str) -> dict[str, list]:
    """Phase 1 (and fine-tuning) of one trial: its Keras history."""
    import keras

    from imgclf.core import runtime
    from imgclf.core.objectives import monitor_of
    from imgclf.training.validation_metrics import ValidationMetrics
    from imgclf.training.inputs import make_dataset
    from imgclf.training.features import FeatureSource, feature_datasets, head_model, uses_features
    from imgclf.training.loop import compile_model, plateau_callbacks
    from imgclf.training.models import build_model, freeze_backbone, is_pretrained, unfreeze_top

    config = request["config"]
    train, model_config = config["train"], config["model"]
    size, channels, batch = tuple(request["image_size"]), request["channels"], request["batch_size"]
    classes = request["classes"]
    balanced = train["sampling"] == "balanced"
    train_data = make_dataset(train_manifest, size, channels, batch, True, request["seed"], cache=cache,
                              balanced=balanced)
    val_data = make_dataset(val_manifest, size, channels, batch, False, request["seed"], cache=cache)
    runtime.set_precision(train["mixed_precision"], runtime.visible_gpus())
    model = build_model(model_config, len(classes), (*size, channels))
    pretrained = is_pretrained(model_config)
    if pretrained:
        freeze_backbone(model)
    compile_model(model, train, train["learning_rate"])
    monitor = monitor_of(train)  # the parent resolved auto from the targets
    validation = ValidationMetrics(val_data, val_manifest.labels, classes)
    # First: early stopping and the rate reduction read the metrics it adds.
    callbacks: list[keras.callbacks.Callback] = [validation, keras.callbacks.TerminateOnNaN(),
                                                 *plateau_callbacks(train, monitor).active]
    fitted, fit_train, fit_val = model, train_data, val_data
    if uses_features(model_config, train, augmented=False):  # trials never augment
        # The head alone on features computed once: a trial of head settings costs seconds.
        fit_train, fit_val = feature_datasets(model, FeatureSource(
            make_dataset(train_manifest, size, channels, batch, False, request["seed"], cache=cache),
            train_manifest.labels,
            val_data, val_manifest.labels, batch, request["seed"], balanced))
        fitted = head_model(model)
        compile_model(fitted, train, train["learning_rate"])
    validation.data = fit_val
    history = fitted.fit(fit_train, epochs=train["epochs"], callbacks=callbacks,
                         shuffle=False, verbose=0).history
    fine = train["fine_tune"]
    if pretrained and fine["enabled"]:
        done = len(history["loss"])
        unfreeze_top(model, fine["unfreeze_layers"])
        compile_model(model, train, fine["learning_rate"])
        validation.data = val_data
        more = model.fit(train_data, initial_epoch=done, epochs=done + fine["epochs"],
                         shuffle=False, callbacks=callbacks, verbose=0).history
        history = {k: history.get(k, []) + more.get(k, []) for k in set(history) | set(more)}
    return history


def main(argv: list[str]) -> int:
    """``python -m imgclf.tune.trial request.json result.json``: exit 0, or 1 with the error in the result."""
    request_path, result_path = Path(argv[0]), Path(argv[1])
    started = time.monotonic()
    try:
        result = train_trial(json.loads(request_path.read_text(encoding="utf-8")))
        code = 0
    except Exception as exc:  # noqa: BLE001  (reported to the parent, which fails the job)
        from imgclf.core.errors import ImgclfError

        result = {"error": str(exc), "user_error": isinstance(exc, ImgclfError),
                  "traceback": traceback.format_exc()}
        code = 1
    result["seconds"] = time.monotonic() - started
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
