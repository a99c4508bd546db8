"""Phase 1 on precomputed backbone features: the same training as on images, without the backbone pass."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

import keras  # noqa: E402

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.training import loop  # noqa: E402
from imgclf.training.features import uses_features  # noqa: E402
from imgclf.training.models import build_model  # noqa: E402
from imgclf.training.run import run_training  # noqa: E402
from tests.training.test_training import files_in  # noqa: E402

CURVES = ["loss", "accuracy", "val_loss", "val_accuracy"]


def lite0_config(precompute: bool, **train):
    return validate_config({
        "seed": 5, "data": {"channels": 3, "image_size": [32, 32]},
        "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dense_units": 16, "dropout": 0.3},
        "train": {"batch_size": 8, "epochs": 3, "tensorboard_histogram_freq": 0, "precompute_features": precompute,
                  "early_stopping": {"enabled": False}, **train}})


def test_phase_1_on_features_trains_the_same_head_as_on_images(fold, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    runs = {}
    for precompute in (False, True):
        keras.utils.set_random_seed(5)  # as each training job starts: one process per run
        files = files_in(tmp_path / str(precompute))
        metrics = run_training(lite0_config(precompute), fold, files, 8)
        model = build_model(lite0_config(precompute)["model"], 3, (32, 32, 3))
        model.load_weights(str(files.best_weights))
        runs[precompute] = (pd.read_csv(files.history), model, metrics)
    (images, on_images, m_images), (features, on_features, m_features) = runs[False], runs[True]
    assert len(images) == len(features) == 3
    np.testing.assert_allclose(features[CURVES].to_numpy(), images[CURVES].to_numpy(), rtol=1e-4, atol=1e-5)
    assert m_features["best_epoch"] == m_images["best_epoch"]
    for name in ("dense", "classifier"):
        for a, b in zip(on_images.get_layer(name).get_weights(), on_features.get_layer(name).get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not (tmp_path / "True" / "resume").exists()  # finished: no resume state left


def test_features_then_fine_tuning_with_fresh_early_stopping(fold, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    seen = []
    original = loop._Recorder.on_train_begin

    def spy(self, logs=None):
        original(self, logs)
        seen.extend((self.phase, cb.wait, cb.best) for name, cb, _ in self.stateful if name == "early_stopping")

    monkeypatch.setattr(loop._Recorder, "on_train_begin", spy)
    config = lite0_config(True, epochs=2, early_stopping={"enabled": True, "patience": 3},
                          fine_tune={"enabled": True, "unfreeze_layers": 5, "epochs": 2})
    metrics = run_training(config, fold, files_in(tmp_path / "ft"), 8)
    assert [p["phase"] for p in metrics["phases"]] == [1, 2]
    history = pd.read_csv(tmp_path / "ft" / "history.csv")
    assert history["phase"].tolist() == [1, 1, 2, 2]
    # Phase 2 starts with early stopping's patience whole, not what phase 1 spent of it.
    assert [(phase, wait) for phase, wait, _ in seen] == [(1, 0), (2, 0)]
    assert seen[1][2] in (None, float("inf"))


@pytest.mark.parametrize("architecture,weights,augmented,precompute,expected", [
    ("efficientnet_lite0", "imagenet", False, True, True),
    ("efficientnet_lite0", "imagenet", True, True, False),  # augmentation changes the images every epoch
    ("efficientnet_lite0", "none", False, True, False),  # a backbone from scratch is never frozen
    ("small_cnn", "none", False, True, False),
    ("efficientnet_lite0", "imagenet", False, False, False),
])
def test_features_are_used_only_for_a_frozen_pretrained_backbone_on_plain_images(
        architecture, weights, augmented, precompute, expected):
    config = validate_config({"model": {"architecture": architecture, "weights": weights},
                              "train": {"precompute_features": precompute}})
    assert uses_features(config["model"], config["train"], augmented) is expected


@pytest.mark.parametrize("precompute", [True, False])
def test_augmentation_during_fine_tuning_only_keeps_phase_1_plain(precompute, fold, tmp_path, monkeypatch):
    """train.augmentation.during: fine_tune: phase 1 on plain images (their features when
    precomputed), phase 2 on augmented ones."""
    from imgclf.training import run

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    built, passed = [], {}
    original_dataset, original_train = run.make_dataset, run.train

    def spy_dataset(manifest, size, channels, batch, training, seed, augment=None, **kw):
        built.append((training, augment is not None))
        return original_dataset(manifest, size, channels, batch, training, seed, augment, **kw)

    def spy_train(build, train_data, val_data, *args):
        passed["features"], passed["phase1_data"] = args[-3] is not None, args[-2] is not None
        return original_train(build, train_data, val_data, *args)

    monkeypatch.setattr(run, "make_dataset", spy_dataset)
    monkeypatch.setattr(run, "train", spy_train)
    config = lite0_config(precompute, epochs=1, augmentation={"flip": "horizontal", "during": "fine_tune"},
                          fine_tune={"enabled": True, "unfreeze_layers": 5, "epochs": 1})
    metrics = run_training(config, fold, files_in(tmp_path / "aug"), 8)
    assert [p["phase"] for p in metrics["phases"]] == [1, 2]
    assert built[0] == (True, True)  # the training set phase 2 reads is augmented
    assert passed == {"features": precompute, "phase1_data": not precompute}
    assert (True, False) in built or precompute  # fed images, phase 1 gets its own plain set


def test_augmentation_during_fine_tuning_needs_a_fine_tuning_phase():
    from imgclf.core.config import check_model_config
    from imgclf.core.errors import ConfigError

    config = validate_config({"model": {"architecture": "efficientnet_lite0", "weights": "imagenet"},
                              "train": {"augmentation": {"flip": "horizontal", "during": "fine_tune"}}})
    with pytest.raises(ConfigError, match="train.augmentation.during is fine_tune, but this run has no fine-tuning"):
        check_model_config(config)
    config["train"]["fine_tune"]["enabled"] = True
    check_model_config(config)
