"""Phase 1 of transfer learning on precomputed backbone features.

While a pretrained backbone is frozen and no augmentation changes the images,
every epoch feeds it the same images and gets the same features back: only
the head learns. So the features are computed once (one inference pass over
the training and validation images) and the head trains on them; an epoch
then costs a few milliseconds per batch instead of a pass through the
backbone. The head trained here *is* the classifier's head (the same layer
objects, so the same weights and the same dropout seeds), and the batches
come in the order the image pipeline would give them (same shuffle seed), so
the result equals training the whole model on images, within float tolerance
(tests/training/test_features.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imgclf.training.inputs import balanced_draw
from imgclf.training.models import is_pretrained

HEAD_LAYERS = ("dropout", "dense", "classifier")
FEATURES_LAYER = "global_pool"


@dataclass
class FeatureSource:
    """The images whose features phase 1 uses, in manifest order (not shuffled)."""

    train_images: tf.data.Dataset
    train_labels: np.ndarray
    val_images: tf.data.Dataset
    val_labels: np.ndarray
    batch_size: int
    seed: int
    balanced: bool = False  # train.sampling: balanced draws the features as the image pipeline would


def backbone_features(model: keras.Model, images: tf.data.Dataset) -> np.ndarray:
    """The pooled backbone features of every image, in the dataset's order (inference mode)."""
    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output, name="features")
    return np.concatenate([np.asarray(extractor(batch, training=False)) for batch, _ in images]) \
        if images.cardinality() != 0 else np.zeros((0, extractor.output.shape[-1]), np.float32)


def head_model(model: keras.Model) -> keras.Model:
    """The classifier's head as a model of its own, sharing the classifier's layers."""
    inputs = keras.Input(shape=model.get_layer(FEATURES_LAYER).output.shape[1:], name="features")
    x = inputs
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name="head")


def feature_datasets(model: keras.Model, source: FeatureSource) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation datasets of features, batched and shuffled as the image pipeline does.

    The training set is shuffled with the seed and buffer the image pipeline
    uses (:func:`imgclf.training.inputs.make_dataset`), so each epoch sees the
    same batches in the same order.
    """
    train = backbone_features(model, source.train_images)
    val = backbone_features(model, source.val_images)
    if source.balanced:
        train_data = balanced_draw(
            lambda members: tf.data.Dataset.from_tensor_slices((train[members], source.train_labels[members])),
            source.train_labels, source.seed)
    else:
        train_data = tf.data.Dataset.from_tensor_slices((train, source.train_labels))
        train_data = train_data.shuffle(len(source.train_labels), seed=source.seed, reshuffle_each_iteration=True)
    val_data = tf.data.Dataset.from_tensor_slices((val, source.val_labels))
    return (train_data.batch(source.batch_size).prefetch(tf.data.AUTOTUNE),
            val_data.batch(source.batch_size).prefetch(tf.data.AUTOTUNE))


def uses_features(model_config: dict[str, Any], train_config: dict[str, Any], augmented: bool) -> bool:
    """Whether phase 1 trains on precomputed features: a pretrained backbone, no augmentation in
    phase 1 (``augmented`` says whether phase 1's images are augmented), the option on."""
    return is_pretrained(model_config) and not augmented and train_config["precompute_features"]
