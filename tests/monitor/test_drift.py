"""Drift statistics (issue 8 groundwork): image statistics, embeddings, predictions, the recommendation."""

import numpy as np
import pandas as pd
import pytest

from imgclf.monitor.drift import (image_drift, mmd_test, outlier_scores, performance_drift, prediction_drift,
                          recommend)


def images(n, seed, brightness=0.5, sharpness=0.02, size=32):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"brightness": rng.normal(brightness, 0.05, n), "contrast": rng.normal(0.2, 0.03, n),
                         "sharpness": rng.gamma(4, sharpness / 4, n), "width": size, "height": size})


def test_image_statistics_flag_a_brightness_shift_and_not_a_fresh_draw():
    reference = images(400, 0)
    same = image_drift(reference, images(150, 1), alpha=0.05)
    assert not same["drift"] and same["p_value"] > 0.05
    brighter = image_drift(reference, images(150, 2, brightness=0.6), alpha=0.05)
    assert brighter["drift"] and brighter["tests"]["brightness"]["p_adjusted"] < 1e-6
    assert brighter["tests"]["brightness"]["batch_median"] > brighter["tests"]["brightness"]["reference_median"]
    resized = image_drift(reference, images(150, 3, size=48), alpha=0.05)
    assert resized["drift"] and resized["tests"]["pixels"]["statistic"] == 1.0


def test_outlier_scores_single_out_unusual_images():
    reference, batch = images(400, 0), images(20, 1)
    batch.loc[3, "brightness"] = 0.95
    scores = outlier_scores(reference, batch)
    assert scores.idxmax() == 3 and scores[3] > 6 and (scores.drop(3) < 4).all()


def test_mmd_detects_a_moved_embedding_and_keeps_its_false_positive_rate():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (200, 8))
    moved = mmd_test(reference, rng.normal(0.5, 1, (100, 8)), n_permutations=100)
    assert moved["p_value"] < 0.02 and moved["mmd2"] > 0
    p_values = [mmd_test(reference, rng.normal(0, 1, (60, 8)), n_permutations=50, seed=s)["p_value"]
                for s in range(20)]
    assert np.mean(np.array(p_values) < 0.05) <= 0.15  # about 5% expected; 20 draws


def test_label_shift_in_the_predicted_classes_and_confidences():
    rng = np.random.default_rng(1)
    classes = ["a", "b"]
    ref = pd.Series(rng.choice(classes, 400))
    conf = pd.Series(rng.uniform(0.7, 1.0, 400))
    steady = prediction_drift(ref, pd.Series(rng.choice(classes, 200)), conf, pd.Series(rng.uniform(0.7, 1, 200)),
                              classes, alpha=0.05)
    assert not steady["drift"]
    shifted = prediction_drift(ref, pd.Series(rng.choice(classes, 200, p=[0.85, 0.15])), conf,
                               pd.Series(rng.uniform(0.7, 1, 200)), classes, alpha=0.05)
    assert shifted["drift"] and shifted["class_mix"]["batch_share"]["a"] > 0.75
    unsure = prediction_drift(ref, pd.Series(rng.choice(classes, 200)), conf, pd.Series(rng.uniform(0.5, 0.8, 200)),
                              classes, alpha=0.05)
    assert unsure["drift"] and unsure["confidence"]["p_adjusted"] < 0.05


def test_performance_against_the_test_baseline():
    # Baseline: 190 of 200 test images right (0.95).
    good = performance_drift(np.array([1] * 95 + [0] * 5), 190, 200, alpha=0.05)
    assert not good["drift"] and good["low"] < 0.95 < good["high"] and good["p_value"] > 0.3
    bad = performance_drift(np.array([1] * 70 + [0] * 30), 190, 200, alpha=0.05)
    assert bad["drift"] and bad["p_value"] < 1e-4 and bad["high"] < bad["baseline"]["low"]
    # Better than the baseline is not drift (one-sided).
    assert not performance_drift(np.array([1] * 100), 150, 200, alpha=0.05)["drift"]
    assert performance_drift(np.array([]), 190, 200, alpha=0.05)["drift"] is None


def test_a_new_image_mode_is_an_image_drift():
    reference = images(300, 0).assign(mode="L")
    same = image_drift(reference, images(100, 1).assign(mode="L"), alpha=0.05)
    assert same["tests"]["mode"]["p_value"] == 1.0 and not same["drift"]
    colour = image_drift(reference, images(100, 1).assign(mode="RGB"), alpha=0.05)
    assert colour["drift"] and colour["tests"]["mode"]["batch_share"] == {"L": 0.0, "RGB": 1.0}


@pytest.mark.parametrize("signals, outliers, action", [
    ({"images": {"drift": False}, "predictions": {"drift": False}}, 0.0, "no action"),
    ({"images": {"drift": True}, "embeddings": {"drift": True}}, 0.8, "retrain favouring the new images"),
    ({"images": {"drift": True}, "embeddings": {"drift": False}}, 0.1, "retrain adding the new images to the old ones"),
    ({"images": {"drift": False}, "predictions": {"drift": True}}, 0.0, "retrain favouring the new images"),
])
def test_the_recommendation_follows_the_signals(signals, outliers, action):
    result = recommend(signals, outliers)
    assert result["action"] == action and result["reason"]


def test_mmd_is_seeded():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, (80, 4)), rng.normal(0.3, 1, (60, 4))
    assert mmd_test(x, y, n_permutations=30, seed=3) == mmd_test(x, y, n_permutations=30, seed=3)


def test_mmd_matches_the_textbook_unbiased_estimate():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (30, 3)), rng.normal(0.4, 1, (20, 3))
    result = mmd_test(x, y, n_permutations=19)
    pooled = np.vstack([x, y])
    kernel = np.exp(-((pooled[:, None] - pooled[None]) ** 2).sum(-1) / result["bandwidth"])
    kxx, kyy, kxy = kernel[:30, :30], kernel[30:, 30:], kernel[:30, 30:]
    expected = ((kxx.sum() - 30) / (30 * 29) + (kyy.sum() - 20) / (20 * 19) - 2 * kxy.mean())
    assert result["mmd2"] == pytest.approx(expected, rel=1e-9)
    assert 1 / 20 <= result["p_value"] <= 1
