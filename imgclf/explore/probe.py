"""The batch-size probe (docs/practices.md section 7: pick the largest batch size
the hardware runs efficiently, keep it, never tune it).

Training throughput (images per second, forward and backward passes) is
measured for growing batch sizes on the real model and hardware; the pick is
the largest size that still raised throughput by at least ``min_gain`` over
the best smaller one, and that fitted in memory.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def probe_batch_sizes(build: Any, input_shape: tuple[int, int, int], n_classes: int, sizes: list[int],
                      steps: int, min_gain: float, n_train: int, train_config: dict[str, Any],
                      min_steps_per_epoch: int = 1, log: Any = None) -> dict[str, Any]:
    """Measure throughput per batch size and choose one.

    Args:
        build: Returns a fresh uncompiled model.
        input_shape: (height, width, channels).
        n_classes: Number of classes.
        sizes: Candidate sizes, increasing.
        steps: Timed steps per size (after two warm-up steps).
        min_gain: Relative gain a larger size must bring.
        n_train: Training images.
        min_steps_per_epoch: Sizes above ``n_train / min_steps_per_epoch`` are skipped.
        train_config: The ``train`` section (optimizer, learning rate).
        log: Logger.

    Returns:
        ``chosen`` and one row per size: images/s, seconds per step, status.
    """
    import keras
    import tensorflow as tf

    from imgclf.training.loop import compile_model

    rows: list[dict[str, Any]] = []
    best_rate, chosen = 0.0, None
    rng = np.random.default_rng(0)
    for size in sorted(sizes):
        if size > n_train / min_steps_per_epoch and size != min(sizes):
            rows.append({"batch_size": size, "status": f"skipped: fewer than {min_steps_per_epoch} "
                                                      f"steps per epoch on {n_train} training images"})
            continue
        keras.backend.clear_session()
        model = build()
        compile_model(model, train_config, train_config["learning_rate"])
        x = tf.constant(rng.uniform(0, 255, size=(size, *input_shape)).astype(np.float32))
        y = tf.constant(rng.integers(0, n_classes, size=size).astype(np.int32))
        try:
            for _ in range(2):
                model.train_on_batch(x, y)
            started = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            elapsed = time.perf_counter() - started
        except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
            rows.append({"batch_size": size, "status": f"out of memory: {type(exc).__name__}"})
            break
        rate = size * steps / elapsed
        gain = rate / best_rate - 1 if best_rate else float("inf")
        rows.append({"batch_size": size, "images_per_s": round(rate, 1),
                     "seconds_per_step": round(elapsed / steps, 4),
                     "gain_over_best_smaller": None if best_rate == 0 else round(gain, 3), "status": "ok"})
        if log:
            log.info("batch %d: %.0f images/s", size, rate)
        if gain >= min_gain:
            best_rate, chosen = rate, size
    if chosen is None:
        chosen = min(sizes)
    return {"chosen": chosen, "min_gain": min_gain, "steps": steps, "n_train": n_train,
            "min_steps_per_epoch": min_steps_per_epoch, "sizes": rows,
            "device": _device_name()}


def _device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    import platform

    return f"CPU ({platform.processor() or platform.machine()})"


def probe_settings(config: dict[str, Any], index: Any, n_train: int) -> dict[str, Any]:
    """What a batch-size pick depends on besides the hardware: the model, the input shape, the
    classes, the candidate sizes and the training images (a pick made for others is not reused).

    Args:
        config: The validated config. index: The index table. n_train: Training images.
    """
    from imgclf.training.inputs import infer_channels

    probe = config["batch_probe"]
    return {"model": config["model"], "mixed_precision": config["train"]["mixed_precision"],
            "input_shape": [*config["data"]["image_size"], infer_channels(index, config["data"]["channels"])],
            "n_classes": int(index["label"].nunique()), "n_train": int(n_train), "sizes": list(probe["sizes"]),
            "min_gain": probe["min_gain"], "min_steps_per_epoch": probe["min_steps_per_epoch"]}


def kept_pick_mismatch(kept: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """None when a kept probe record fits ``wanted`` (:func:`probe_settings`), else what differs."""
    before = kept.get("probed_for")
    if not isinstance(before, dict) or "chosen" not in kept:
        return "it records no settings"
    differ = [key for key in sorted(set(before) | set(wanted)) if before.get(key) != wanted.get(key)]
    return ", ".join(differ) or None

