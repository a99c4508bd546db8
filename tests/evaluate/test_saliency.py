"""Saliency maps: Grad-CAM on the last convolutional layer, the border share, the border flag."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from conftest import pattern  # noqa: E402
from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ImgclfError  # noqa: E402
from imgclf.evaluate import saliency  # noqa: E402
from imgclf.training.loop import compile_model  # noqa: E402
from imgclf.training.models import build_model, get_backbone  # noqa: E402

SIZE, MARK = 48, 5  # the border band at margin 0.10 is round(4.8) = 5 pixels wide: the mark fills it


# -- border share, summaries, gallery, overlay: pure functions on fixed data -----------------
def test_border_share_of_hand_made_maps():
    uniform = np.ones((40, 40))
    corner = np.zeros((40, 40))
    corner[:4, :4] = 1.0  # inside the outer 4 rows and columns
    centre = np.zeros((40, 40))
    centre[18:22, 18:22] = 1.0
    shares = saliency.border_share(np.stack([uniform, corner, centre, np.zeros((40, 40))]))
    np.testing.assert_allclose(shares[:3], [0.36, 1.0, 0.0])  # 1 - 0.8^2 for the uniform map
    assert np.isnan(shares[3])
    assert saliency.area_share(40, 40) == pytest.approx(0.36)
    assert saliency.area_share(SIZE, SIZE) == pytest.approx(1 - (38 / 48) ** 2)  # round(4.8) = 5
    assert float(saliency.border_share(corner)) == 1.0  # one map
    left = np.zeros((40, 40))
    left[10:30, :4] = 2.0
    left[10:30, 10:14] = 2.0
    assert float(saliency.border_share(left)) == pytest.approx(0.5)
    assert float(saliency.border_share(left, margin=0.4)) == 1.0  # a 16-pixel band holds both
    with pytest.raises(ValueError, match="margin"):
        saliency.border_share(uniform, margin=0.5)
    with pytest.raises(ValueError, match="non-negative"):
        saliency.border_share(-uniform)


def test_border_summary_per_class_leaves_empty_maps_out():
    table = pd.DataFrame({"label": ["b", "a", "a", "a", "b", "b"],
                          "border_share": [0.2, 0.9, 0.6, 0.3, np.nan, 0.4]})
    summary = saliency.border_summary(table, "label")
    assert summary["label"].tolist() == ["a", "b"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert (a["n"], a["n_empty"], b["n"], b["n_empty"]) == (3, 0, 2, 1)
    assert a["mean_border_share"] == pytest.approx(0.6) and a["median_border_share"] == pytest.approx(0.6)
    assert a["share_above_half"] == pytest.approx(2 / 3) and b["share_above_half"] == 0.0
    assert b["mean_border_share"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="group"):
        saliency.border_summary(table, "group")


def summary_of(means, n=20, by="label"):
    return pd.DataFrame({by: list(means), "n": n, "n_empty": 0, "mean_border_share": list(means.values()),
                         "median_border_share": list(means.values()), "share_above_half": 0.8})


def test_border_findings_name_the_class_whose_saliency_sits_on_the_border():
    area = 0.36
    findings = saliency.border_findings(summary_of({"benign": 0.40, "melanoma": 0.72, "nevus": 0.38}), area)
    assert len(findings) == 1
    finding = findings[0]
    assert finding["code"] == "saliency_on_border" and finding["severity"] == "warning"
    assert "'melanoma'" in finding["message"] and "72%" in finding["message"]
    assert "39%" in finding["message"] and "36%" in finding["message"]  # the others' median, uniform
    assert "saliency grid" in finding["hint"] and "crop or mask" in finding["hint"]
    assert finding["details"]["label"] == "melanoma"
    # Saliency near a uniform map's, or too few maps to judge: no warning.
    assert saliency.border_findings(summary_of({"a": 0.45, "b": 0.30}), area) == []
    assert saliency.border_findings(summary_of({"a": 0.90, "b": 0.30}, n=saliency.FLAG_MIN_IMAGES - 1), area) == []
    # A wide margin: the band alone holds most of the area, the uniform reference decides.
    assert saliency.border_findings(summary_of({"a": 0.70, "b": 0.55}), 0.64) == []
    by_group = saliency.border_findings(summary_of({"site_1": 0.8, "site_2": 0.3}, by="site"), area, by="site")
    assert [f["details"]["site"] for f in by_group] == ["site_1"]


def test_gallery_picks_the_most_confident_correct_images_and_mistakes_per_class():
    predictions = pd.DataFrame({
        "path": ["a/5.png", "a/1.png", "a/2.png", "a/3.png", "a/4.png", "b/1.png", "b/2.png", "c/1.png"],
        "label": ["a", "a", "a", "a", "a", "b", "b", "c"],
        "predicted": ["a", "a", "a", "b", "c", "b", "a", "c"],
        "confidence": [0.9, 0.9, 0.95, 0.6, 0.8, 0.7, 0.99, 0.5]})
    picks = saliency.gallery_picks(predictions, ["a", "b", "c", "d"], per_class=2)
    assert list(zip(picks["path"], picks["kind"])) == [
        ("a/2.png", "correct"), ("a/1.png", "correct"),  # 0.95, then the 0.9 tie by path
        ("a/4.png", "mistake"), ("a/3.png", "mistake"),
        ("b/1.png", "correct"), ("b/2.png", "mistake"), ("c/1.png", "correct")]
    assert list(picks.columns) == ["path", "label", "predicted", "confidence", "kind"]
    reordered = saliency.gallery_picks(predictions.iloc[::-1], ["a", "b", "c", "d"], per_class=2)
    pd.testing.assert_frame_equal(picks, reordered)


def test_overlay_blends_a_heat_map_over_gray_and_rgb_images():
    gray = np.full((20, 30), 100.0, np.float32)
    heat = np.zeros((20, 30), np.float32)
    heat[5:10, 5:10] = 1.0
    for image in (gray, gray[..., None], np.repeat(gray[..., None], 3, axis=-1)):
        blended = saliency.overlay(image, heat)
        assert blended.shape == (20, 30, 3) and blended.dtype == np.uint8
        assert not np.array_equal(blended[7, 7], blended[15, 20])  # hot and cold differ
    assert saliency.overlay(gray, heat[::2, ::3]).shape == (20, 30, 3)  # a coarser map is resized


# -- Grad-CAM ---------------------------------------------------------------------------------
def small_cnn(filters, n_classes=2, shape=(SIZE, SIZE, 1), dense_units=16):
    config = validate_config({"model": {"small_cnn": {"filters": filters}, "dense_units": dense_units,
                                        "dropout": 0.0}})
    return build_model(config["model"], n_classes, shape), config


def reference_cam(features, head, images, classes):
    """Grad-CAM written out for one split of a model: features(x) -> A, head(A) -> logits."""
    with tf.GradientTape() as tape:
        maps = features(images)
        tape.watch(maps)
        score = tf.reduce_sum(tf.gather(head(maps), classes, axis=1, batch_dims=1))
    weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", maps, weights))
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0)


def logits(model, hidden):
    classifier = model.get_layer("classifier")
    return hidden @ classifier.kernel + classifier.bias


def test_grad_cam_of_the_small_cnn_is_the_papers_computation_on_its_last_conv_block():
    keras.utils.set_random_seed(1)
    model, _ = small_cnn([4, 8, 8], n_classes=3)
    feature = saliency.last_conv_layer(model)
    assert (feature.conv.name, feature.name, feature.path) == ("conv3", "relu3", ())
    images = np.random.default_rng(0).uniform(0, 255, (5, SIZE, SIZE, 1)).astype(np.float32)
    classes = np.array([0, 1, 2, 2, 1])
    cams = saliency.grad_cam(model, images, classes, batch_size=2)
    assert cams.shape == (5, SIZE, SIZE) and cams.dtype == np.float32
    assert cams.min() >= 0 and cams.max() <= 1
    split = keras.Model(model.input, model.get_layer("relu3").output)

    def head(maps):
        hidden = model.get_layer("dense")(model.get_layer("global_pool")(model.get_layer("pool3")(maps)))
        return logits(model, hidden)

    np.testing.assert_allclose(cams, reference_cam(lambda x: split(x, training=False), head, images, classes),
                               atol=1e-5)
    predicted = np.argmax(model.predict(images, verbose=0), axis=1)
    np.testing.assert_allclose(saliency.grad_cam(model, images), saliency.grad_cam(model, images, predicted))


def test_grad_cam_reaches_into_a_nested_pretrained_style_backbone(tmp_path):
    config = validate_config({"model": {"architecture": "efficientnet_lite0", "weights": "none",
                                        "dense_units": 8}})
    model = build_model(config["model"], 3, (64, 64, 1))
    feature = saliency.last_conv_layer(model)
    assert feature.path == (get_backbone(model),) and feature.name == "backbone/top_relu6"
    images = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 1)).astype(np.float32)
    classes = np.array([2, 0, 1])
    cams = saliency.grad_cam(model, images, classes)
    assert cams.shape == (3, 64, 64) and cams.min() >= 0 and cams.max() <= 1
    backbone = get_backbone(model)

    def features(x):  # gray to RGB, then the backbone: its output is the feature map
        return backbone(tf.concat([x, x, x], axis=-1), training=False)

    def head(maps):
        return logits(model, model.get_layer("dense")(model.get_layer("global_pool")(maps)))

    np.testing.assert_allclose(cams, reference_cam(features, head, images, classes), atol=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(str(path), compile=False)
    np.testing.assert_allclose(saliency.grad_cam(loaded, images, classes), cams, atol=1e-5)


def test_a_nested_model_without_a_softmax_dense_layer_gets_the_maps_of_its_probabilities():
    keras.utils.set_random_seed(3)
    inner_input = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inner_input)
    body = keras.Model(inner_input, keras.layers.Conv2D(6, 3, padding="same", name="last")(conv), name="body")
    image = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(body(image))
    model = keras.Model(image, keras.layers.Softmax()(keras.layers.Dense(3)(pooled)))
    assert saliency.last_conv_layer(model).name == "body/last"
    images = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    cams = saliency.grad_cam(model, images, np.array([1, 2]))
    head = keras.Sequential(model.layers[-3:])
    np.testing.assert_allclose(cams, reference_cam(body, head, images, np.array([1, 2])), atol=1e-5)


def test_grad_cam_of_an_ensemble_is_the_mean_of_its_members_maps():
    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        member, _ = small_cnn([4, 8], n_classes=3)
        member.name = f"seed_{seed}"
        members.append(member)
    image = keras.Input((SIZE, SIZE, 1))
    ensemble = keras.Model(image, keras.layers.Average()([m(image) for m in members]))
    from imgclf.training.ensemble import ensemble_members

    assert ensemble_members(ensemble) == members
    images = np.random.default_rng(2).uniform(0, 255, (4, SIZE, SIZE, 1)).astype(np.float32)
    classes = np.array([0, 1, 2, 0])
    cams = saliency.grad_cam(ensemble, images, classes)
    mean = np.mean([saliency.grad_cam(m, images, classes) for m in members], axis=0)
    np.testing.assert_allclose(cams, mean / mean.reshape(4, -1).max(axis=1)[:, None, None], atol=1e-6)
    assert cams.shape == (4, SIZE, SIZE) and cams.min() >= 0 and cams.max() <= 1


def test_a_model_without_convolutions_has_no_saliency_map():
    image = keras.Input((8, 8, 1))
    flat = keras.layers.Dense(2, activation="softmax", name="classifier")(keras.layers.Flatten()(image))
    with pytest.raises(ImgclfError, match="saliency maps need a convolutional network"):
        saliency.grad_cam(keras.Model(image, flat), np.zeros((1, 8, 8, 1), np.float32), np.array([0]))


# -- The flag on a learned shortcut -----------------------------------------------------------
def mark_images(seed, n_per_class, where):
    """Smooth gray textures (the same for both classes, at most 180) with noise; class 0
    ("marked") has a white MARK x MARK square in a random corner or near the centre, class 1
    ("plain") has none. Returns (images, labels) shuffled."""
    rng = np.random.default_rng(seed)
    x = np.stack([np.asarray(pattern(int(rng.integers(1 << 30)), SIZE, "L"), np.float32)
                  for _ in range(2 * n_per_class)])
    x = np.clip(0.65 * x + rng.normal(0, 10, x.shape), 0, 180)
    y = np.repeat([0, 1], n_per_class)
    for i in range(n_per_class):
        if where == "corner":
            row, col = rng.choice([0, SIZE - MARK], size=2)
        else:
            row, col = SIZE // 2 - MARK // 2 + rng.integers(-3, 4, size=2)
        x[i, row:row + MARK, col:col + MARK] = 255
    order = rng.permutation(len(y))
    return x[order, ..., None].astype(np.float32), y[order]


def border_flags(where, seed=0):
    """Train the small CNN (two conv blocks) on the mark data until it separates held-out images,
    then the per-class border summary and findings of its Grad-CAM maps on them."""
    train_x, train_y = mark_images(seed, 96, where)
    test_x, test_y = mark_images(seed + 100, 40, where)
    keras.utils.set_random_seed(seed)
    model, config = small_cnn([16, 32])
    compile_model(model, config["train"], 3e-3)
    for rounds in range(1, 11):  # 20 epochs at least, then until held-out accuracy reaches 0.95
        model.fit(train_x, train_y, batch_size=16, epochs=5, verbose=0)
        accuracy = float(np.mean(model.predict(test_x, verbose=0).argmax(axis=1) == test_y))
        if rounds >= 4 and accuracy >= 0.95:
            break
    assert accuracy > 0.9, f"the model did not learn the {where} mark: held-out accuracy {accuracy:.2f}"
    cams = saliency.grad_cam(model, test_x, test_y)
    table = pd.DataFrame({"label": np.where(test_y == 0, "marked", "plain"),
                          "border_share": saliency.border_share(cams)})
    summary = saliency.border_summary(table, "label").set_index("label")
    return summary, saliency.border_findings(summary.reset_index(), saliency.area_share(SIZE, SIZE))


def test_a_corner_mark_that_decides_the_class_is_flagged():
    summary, findings = border_flags("corner")
    assert summary.loc["marked", "mean_border_share"] > 0.7
    assert "marked" in [f["details"]["label"] for f in findings]
    assert "'marked'" in findings[0]["message"]


def test_a_centre_mark_that_decides_the_class_is_not_flagged():
    summary, findings = border_flags("centre")
    assert summary.loc["marked", "mean_border_share"] < 0.3  # the model looks at the centre mark
    assert findings == []
