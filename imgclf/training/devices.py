"""The devices one training job trains on: one (the default), or several GPUs data-parallel.

With ``train.gpus_per_job`` above 1, the job trains under ``tf.distribute.MirroredStrategy``:
each step's batch (``train.batch_size``, the global batch) is split evenly across the GPUs,
every GPU holds a copy of the weights, and the gradients are summed across them before each
update. Call :func:`imgclf.core.runtime.configure` before importing this module.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import tensorflow as tf

from imgclf.core.errors import ImgclfError


def training_devices(gpus_per_job: int, available: list[str] | None = None) -> list[str]:
    """The devices a job trains on: the first ``gpus_per_job`` of ``available`` (the GPUs this
    process sees, by default), or none (TensorFlow's default placement) for one GPU.

    Raises:
        ImgclfError: fewer devices are visible than ``train.gpus_per_job`` asks for.
    """
    if available is None:
        available = [device.name for device in tf.config.list_logical_devices("GPU")]
    if gpus_per_job <= 1:
        return []
    if len(available) < gpus_per_job:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise ImgclfError(
            f"train.gpus_per_job is {gpus_per_job}, but this job sees {len(available)} GPU(s)"
            + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""),
            "run the job where that many GPUs are free (the training rules ask the cluster for "
            "train.gpus_per_job GPUs: check the profile's GPU settings), or lower train.gpus_per_job")
    return list(available[:gpus_per_job])


def strategy_scope(devices: list[str], log: Any = None) -> Any:
    """A context in which models built, compiled and trained use ``devices`` data-parallel
    (MirroredStrategy), or a no-op context for one device."""
    if len(devices) <= 1:
        return nullcontext()
    if log is not None:
        log.info("data-parallel training on %d devices (%s): each batch split across them",
                 len(devices), ", ".join(devices))
    return tf.distribute.MirroredStrategy(devices=devices).scope()
