"""Loading a saved final model and predicting a manifest's images.

Call :func:`imgclf.core.runtime.configure` before importing this module
(it imports TensorFlow).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from imgclf.core.errors import ImgclfError
from imgclf.training import models  # noqa: F401  (registers the custom layers for loading)
from imgclf.training.inputs import Manifest, make_dataset


def load_model(path: str | Path) -> keras.Model:
    """A saved ``model.keras``, without its training state (inference only).

    Raises:
        ImgclfError: The file is missing or not a Keras model.
    """
    try:
        return keras.saving.load_model(str(path), compile=False)
    except (OSError, ValueError) as exc:
        raise ImgclfError(f"{path} cannot be loaded as a Keras model: {exc}",
                          "rerun its final training (snakemake --forcerun final_train)") from None


def predict_proba(model: keras.Model, manifest: Manifest, image_size: tuple[int, int], channels: int,
                  batch_size: int) -> np.ndarray:
    """Class probabilities of every image of the manifest, in its order."""
    data = make_dataset(manifest, image_size, channels, batch_size, training=False, seed=0, cache=False)
    return _probabilities(model.predict(data, verbose=0), manifest)


def predict_proba_tta(model: keras.Model, manifest: Manifest, image_size: tuple[int, int], channels: int,
                      batch_size: int, plain: np.ndarray | None = None) -> np.ndarray:
    """Test-time augmentation: the class probabilities of every image averaged with those of its
    left-right and up-down mirrors, in the manifest's order. ``plain``: the images' own
    probabilities (:func:`predict_proba`) when already computed, so they are not predicted twice."""
    import tensorflow as tf

    data = make_dataset(manifest, image_size, channels, batch_size, training=False, seed=0, cache=False)
    if plain is None:
        plain = _probabilities(model.predict(data, verbose=0), manifest)
    mirrors = [data.map(lambda x, y: (tf.image.flip_left_right(x), y)),
               data.map(lambda x, y: (tf.image.flip_up_down(x), y))]
    return np.mean([plain, *(_probabilities(model.predict(view, verbose=0), manifest) for view in mirrors)], axis=0)


def _probabilities(output: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The softmax output, one row per image of the manifest, renormalised in float64 (the
    float32 rows do not sum exactly to 1)."""
    proba = np.asarray(output, dtype=np.float64)
    if proba.shape[0] != len(manifest.paths):
        raise ImgclfError(f"the model returned {proba.shape[0]} predictions for {len(manifest.paths)} images")
    return proba / proba.sum(axis=1, keepdims=True)


def predict_with_embeddings(model: keras.Model, manifest: Manifest, image_size: tuple[int, int], channels: int,
                            batch_size: int, layer: str = "dense") -> tuple[np.ndarray, np.ndarray]:
    """The features of ``layer`` (the head's last hidden layer) and the class probabilities of every
    image of the manifest, in its order, from one pass. For an ensemble
    (:mod:`imgclf.training.ensemble`) the features are its members' ``layer``, side by side.

    Raises:
        ImgclfError: The model has no such layer.
    """
    from imgclf.training.ensemble import ensemble_members

    members = ensemble_members(model)
    if members:
        data = make_dataset(manifest, image_size, channels, batch_size, training=False, seed=0, cache=False)
        parts = [predict_with_embeddings(member, manifest, image_size, channels, batch_size, layer)[0]
                 for member in members]
        return np.concatenate(parts, axis=1), _probabilities(model.predict(data, verbose=0), manifest)
    try:
        features = model.get_layer(layer).output
    except ValueError:
        raise ImgclfError(f"the model has no layer {layer!r} to take embeddings from",
                          "monitor a model built by imgclf (its head ends with Dense layers named dense "
                          "and classifier)") from None
    both = keras.Model(model.inputs, [features, model.outputs[0]])
    data = make_dataset(manifest, image_size, channels, batch_size, training=False, seed=0, cache=False)
    embeddings, output = both.predict(data, verbose=0)
    return embeddings.astype(np.float32), _probabilities(output, manifest)
