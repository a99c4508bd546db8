"""The tf.data input pipeline, fed by the fold manifests (never the folder).

Before anything trains, every file of a manifest is checked against the
sha256 the manifest recorded: an image changed or removed since the split is
an error, not a silent difference.
"""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import keras

from imgclf.core.errors import ImgclfError
from imgclf.core.io import GRAY_MODES, read_index, sha256_file
from imgclf.core.runtime import input_threads

#: Numbers the file caches of one process apart (each cached dataset needs its own files).
_CACHE_FILES = itertools.count()


@dataclass
class Manifest:
    """A fold manifest with absolute paths and integer labels."""

    paths: list[str]
    labels: np.ndarray
    table: pd.DataFrame

    def subset(self, positions: np.ndarray) -> "Manifest":
        """The rows at ``positions``, in that order."""
        return Manifest([self.paths[i] for i in positions], self.labels[positions], self.table.iloc[positions])


def read_manifest(path: str | Path, data_root: str | Path, class_names: list[str],
                  verify: bool = True) -> Manifest:
    """Read a manifest and check that its images are the ones it recorded.

    Args:
        path: The manifest CSV (path, sha256, label, group).
        data_root: Folder the manifest's paths are relative to.
        class_names: Every class, in label-index order.
        verify: Check each file's sha256.

    Raises:
        ImgclfError: Naming the missing or changed files.
    """
    table = read_index(path)
    root = Path(data_root)
    unknown = sorted(set(table["label"]) - set(class_names))
    if unknown:
        raise ImgclfError(f"{path}: labels {unknown} are not among the classes {class_names}",
                          "rerun the split: the manifests and the index disagree")
    if verify:
        check_files(table, root, path)
    labels = table["label"].map({c: i for i, c in enumerate(class_names)}).to_numpy(np.int32)
    return Manifest([str(root / p) for p in table["path"]], labels, table)


def check_files(table: pd.DataFrame, data_root: str | Path, source: str | Path) -> None:
    """Check that each listed image (``path``, ``sha256``) is the one the manifest recorded.

    Raises:
        ImgclfError: Naming the missing or changed files of ``source``.
    """
    root = Path(data_root)
    missing, changed = [], []
    for rel, expected in zip(table["path"], table["sha256"]):
        try:
            # Never opened unless a regular file: reading a FIFO blocks forever.
            if not stat.S_ISREG(os.stat(root / rel).st_mode):
                changed.append(f"{rel} (no longer a regular file: not opened)")
                continue
            digest = sha256_file(root / rel)
        except OSError:
            missing.append(rel)
            continue
        if digest != expected:
            changed.append(rel)
    if missing or changed:
        lines = [f"  missing: {p}" for p in missing[:10]] + [f"  changed: {p}" for p in changed[:10]]
        raise ImgclfError(
            f"{source}: {len(missing)} image(s) are missing and {len(changed)} changed since the split "
            f"(sha256 differs from the manifest):\n" + "\n".join(lines),
            "restore the original images (e.g. dvc checkout), or rerun validation and the split "
            "(snakemake --forcerun validate_data) to accept the new data")


def infer_channels(index: pd.DataFrame, setting: Any) -> int:
    """1 when every image is grayscale, else 3 (or the configured value)."""
    if setting in (1, 3):
        return int(setting)
    return 1 if set(index["mode"]).issubset(GRAY_MODES) else 3


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> dict[int, float] | None:
    """Per-class loss weights: None, or inversely proportional to frequency."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return {i: float(w) for i, w in enumerate(weights)}


def augmentation_layers(augment: dict[str, Any], seed: int) -> keras.Sequential | None:
    """Seeded Keras augmentation layers, or None when every option is off."""
    chosen: list[keras.layers.Layer] = []
    if augment["flip"] != "none":
        chosen.append(keras.layers.RandomFlip(augment["flip"], seed=seed))
    if augment["rotation"] > 0:
        chosen.append(keras.layers.RandomRotation(augment["rotation"], seed=seed + 1))
    if augment["zoom"] > 0:
        chosen.append(keras.layers.RandomZoom(augment["zoom"], seed=seed + 2))
    if augment["contrast"] > 0:
        chosen.append(keras.layers.RandomContrast(augment["contrast"], value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(chosen, name="augmentation") if chosen else None


def balanced_draw(of_members: Any, labels: np.ndarray, seed: int) -> tf.data.Dataset:
    """One epoch of balanced sampling: ``len(labels)`` elements, each class drawn with equal
    probability (a minority class's images repeat, a majority class's are drawn from in turn).

    Each class's elements are shuffled (seeded, reshuffled every pass) and repeated; a seeded
    draw picks the class of every next element, redrawn each epoch. The same seed gives the same
    sequence on every machine.

    Args:
        of_members: The dataset of the elements at the given positions (one class's), in order.
        labels: Every element's class index.
        seed: The run's seed.
    """
    classes = np.unique(labels)
    per_class = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        data = of_members(members).shuffle(len(members), seed=seed + 1 + int(c), reshuffle_each_iteration=True)
        per_class.append(data.repeat())
    drawn = tf.data.Dataset.sample_from_datasets(per_class, weights=[1.0 / len(classes)] * len(classes), seed=seed,
                                                 rerandomize_each_iteration=True)
    return drawn.take(len(labels))


def _decoder(image_size: tuple[int, int], channels: int):
    def decode(path: tf.Tensor, label: tf.Tensor):
        data = tf.io.read_file(path)
        image = tf.io.decode_image(data, channels=channels, expand_animations=False, dtype=tf.uint8)
        image.set_shape([None, None, channels])
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label
    return decode


def make_dataset(
    manifest: Manifest,
    image_size: tuple[int, int],
    channels: int,
    batch_size: int,
    training: bool,
    seed: int,
    augment: keras.Sequential | None = None,
    cache: bool | str = True,
    balanced: bool = False,
) -> tf.data.Dataset:
    """Decode, resize, cache, shuffle (seeded), batch, augment (seeded), prefetch.

    Images are cached as uint8 after resizing (a quarter of float32's memory)
    and cast to float32 in [0, 255] per batch: the models scale them. With
    ``balanced`` (a training set only), each epoch draws as many images as the
    manifest holds, every class equally likely (:func:`balanced_draw`).

    ``cache``: True keeps the decoded images in memory, False decodes them every pass, a
    string is the prefix of a file cache (:func:`imgclf.training.cache.job_cache`). The
    pipeline runs on the job's input threads (:func:`imgclf.core.runtime.input_threads`, a
    pool of its own when above 1); neither changes the elements or their order.
    """
    decode = _decoder(tuple(image_size), channels)

    def decoded(paths: list[str], labels: np.ndarray) -> tf.data.Dataset:
        data = tf.data.Dataset.from_tensor_slices((paths, labels))
        data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if isinstance(cache, str):
            return data.cache(f"{cache}-{next(_CACHE_FILES)}")
        return data.cache() if cache else data

    if training and balanced:
        data = balanced_draw(lambda members: decoded([manifest.paths[i] for i in members], manifest.labels[members]),
                             manifest.labels, seed)
    else:
        data = decoded(manifest.paths, manifest.labels)
        if training:
            data = data.shuffle(len(manifest.paths), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    data = data.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    if training and augment is not None:
        data = data.map(lambda x, y: (augment(x, training=True), y),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    threads = input_threads()
    if threads > 1:
        # TensorFlow's inter-op pool has one thread (determinism): the input pipeline gets its
        # own, sized to the job's CPUs, so that decoding keeps a GPU fed. Order is kept
        # (deterministic maps), so the batches are the same as with one thread.
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        data = data.with_options(options)
    return data.prefetch(tf.data.AUTOTUNE)
