"""Test-time augmentation: the probabilities averaged over an image and its two mirrors."""

import numpy as np

from imgclf.core import runtime

runtime.configure(0, 1)

from imgclf.core.io import read_index  # noqa: E402
from imgclf.training.inputs import make_dataset, read_manifest  # noqa: E402
from imgclf.training.models import build_model  # noqa: E402
from imgclf.training.predict import predict_proba, predict_proba_tta  # noqa: E402


def test_tta_averages_the_image_and_its_left_right_and_up_down_mirrors(fold):
    classes = sorted(read_index(fold.index)["label"].unique())
    manifest = read_manifest(fold.val_manifest, fold.data_root, classes)
    model = build_model({"architecture": "small_cnn", "weights": "none", "dropout": 0.0, "dense_units": 8,
                         "bn_momentum": 0.9, "small_cnn": {"filters": [4]}}, len(classes), (32, 32, 3))
    images = np.concatenate([x.numpy() for x, _ in make_dataset(manifest, (32, 32), 3, 8, False, 0, cache=False)])
    expected = np.mean([model.predict(view, verbose=0) for view in (images, images[:, :, ::-1], images[:, ::-1])],
                       axis=0)
    averaged = predict_proba_tta(model, manifest, (32, 32), 3, 8)
    np.testing.assert_allclose(averaged, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(averaged, predict_proba(model, manifest, (32, 32), 3, 8), atol=1e-4)
