"""Balanced sampling: every class equally likely in each epoch, seeded, the same on every run."""

import numpy as np
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

import tensorflow as tf  # noqa: E402

from imgclf.core.config import check_model_config, validate_config  # noqa: E402
from imgclf.core.errors import ConfigError  # noqa: E402
from imgclf.training.inputs import Manifest, balanced_draw, make_dataset, read_manifest  # noqa: E402

# 90 images of class 0, 10 of class 1: the element's value is its position.
LABELS = np.array([0] * 90 + [1] * 10, dtype=np.int32)


def elements(labels=LABELS):
    return lambda members: tf.data.Dataset.from_tensor_slices((members.astype(np.int64), labels[members]))


def epochs(data, n=3):
    return [[(int(x), int(y)) for x, y in data] for _ in range(n)]


def test_each_epoch_draws_every_class_equally_often_and_as_many_images_as_there_are():
    drawn = epochs(balanced_draw(elements(), LABELS, seed=7), n=4)
    counts = np.array([[sum(y == c for _, y in epoch) for c in (0, 1)] for epoch in drawn])
    assert all(len(epoch) == 100 for epoch in drawn)
    # Binomial(100, 0.5): 35-65 holds with probability above 0.998; unbalanced it would be 90/10.
    assert ((counts >= 35) & (counts <= 65)).all(), counts
    minority = {x for epoch in drawn for x, y in epoch if y == 1}
    assert minority == set(range(90, 100))  # every minority image is used, repeated
    assert all((x < 90) == (y == 0) for epoch in drawn for x, y in epoch)  # each element keeps its label
    assert drawn[0] != drawn[1]  # redrawn each epoch


def test_the_same_seed_gives_the_same_epochs_and_another_seed_others():
    first = epochs(balanced_draw(elements(), LABELS, seed=7))
    again = epochs(balanced_draw(elements(), LABELS, seed=7))
    other = epochs(balanced_draw(elements(), LABELS, seed=8))
    assert first == again and first != other


def test_the_image_pipeline_samples_a_training_set_balanced(fold):
    classes = ["a", "b", "c"]
    manifest = read_manifest(fold.train_manifest, fold.data_root, classes)
    # Keep one class's images only twice: 2 of b against the others' all.
    keep = np.concatenate([np.flatnonzero(manifest.labels != 1), np.flatnonzero(manifest.labels == 1)[:2]])
    skewed = Manifest([manifest.paths[i] for i in keep], manifest.labels[keep], manifest.table.iloc[keep])
    data = make_dataset(skewed, (16, 16), 3, 4, True, 3, balanced=True)
    labels = np.concatenate([y.numpy() for _, y in data])
    assert len(labels) == len(keep)
    assert np.bincount(labels, minlength=3)[1] > 2  # the rare class repeats
    plain = np.concatenate([y.numpy() for _, y in make_dataset(skewed, (16, 16), 3, 4, True, 3)])
    assert np.bincount(plain, minlength=3)[1] == 2
    validation = make_dataset(skewed, (16, 16), 3, 4, False, 3, balanced=True)  # never for evaluation
    assert np.array_equal(np.concatenate([y.numpy() for _, y in validation]), skewed.labels)


def test_balanced_sampling_and_balanced_weights_together_are_refused():
    config = validate_config({"train": {"sampling": "balanced", "class_weights": "balanced"}})
    with pytest.raises(ConfigError, match="corrected twice"):
        check_model_config(config)
