"""Bias audit core: binning, image slices, association, representation, per-group metrics."""

import numpy as np
import pandas as pd
import pytest

from imgclf.audit import (MISSING, association, bin_numeric, group_metrics, group_table, image_slices,
                          representation)
from imgclf.errors import ConfigError


def test_numeric_columns_are_binned_with_edges_or_quantiles():
    ages = pd.Series(["25", "45", "70", None, "30", "90"])
    assert bin_numeric(ages, [0, 30, 60, 90]).tolist() == [
        "[0, 30)", "[30, 60)", "[60, 90]", MISSING, "[30, 60)", "[60, 90]"]
    quartiles = bin_numeric(pd.Series(range(100)), 4)
    assert quartiles.value_counts().tolist() == [25, 25, 25, 25]
    assert bin_numeric(pd.Series([1, 2, 1]), 4).tolist() == ["1", "2", "1"]  # few values: kept as they are


def test_image_slices_use_the_reference_tertiles():
    reference = pd.DataFrame({"brightness": np.linspace(0, 1, 9), "contrast": 0.1, "sharpness": 0.1,
                              "width": 10, "height": 10})
    test = pd.DataFrame({"brightness": [0.05, 0.5, 0.95], "contrast": 0.1, "sharpness": 0.1,
                         "width": [10, 20, 10], "height": [10, 10, 20]})
    slices = image_slices(test, reference)
    assert slices["image:brightness"].tolist() == ["low", "mid", "high"]
    assert slices["image:aspect_ratio"].tolist() == ["square", "landscape", "portrait"]


def test_group_table_refuses_an_unknown_column():
    index = pd.DataFrame({"path": ["a"], "label": ["x"], "sex": ["f"]})
    with pytest.raises(ConfigError, match=r"names \['site'\], which the index does not have"):
        group_table(index, ["site"], {}, 4, image=False)
    table = group_table(index, ["sex"], {}, 4, image=False)
    assert table.columns.tolist() == ["path", "sex"]


def test_association_flags_a_planted_correlation_and_not_an_absent_one():
    rng = np.random.default_rng(0)
    labels = pd.Series(rng.choice(["ill", "well"], 400))
    # Planted: the portable scanner is used on the ill 90% of the time.
    scanner = pd.Series(np.where(labels == "ill", rng.choice(["portable", "fixed"], 400, p=[0.9, 0.1]),
                                 rng.choice(["portable", "fixed"], 400, p=[0.1, 0.9])))
    independent = pd.Series(rng.choice(["site_a", "site_b"], 400))
    planted, absent = association(labels, scanner), association(labels, independent)
    assert planted["cramers_v"] > 0.7 and planted["p_value"] < 1e-10
    assert absent["cramers_v"] < 0.15 and absent["p_value"] > 0.01
    # By hand: a 2x2 table [[30, 10], [10, 30]]: chi2 = 20, V = sqrt(20 / 80) = 0.5.
    by_hand = association(pd.Series(["a"] * 40 + ["b"] * 40),
                          pd.Series(["g"] * 30 + ["h"] * 10 + ["g"] * 10 + ["h"] * 30))
    assert by_hand["chi2"] == pytest.approx(20.0) and by_hand["cramers_v"] == pytest.approx(0.5)
    assert association(labels, pd.Series(["one"] * 400))["cramers_v"] is None


def test_representation_per_set():
    table = representation({"train": pd.Series(["f", "f", "m", "m"]), "val": pd.Series(["f", "f"])})
    val_m = table[(table["set"] == "val") & (table["group"] == "m")].iloc[0]
    assert val_m["count"] == 0 and val_m["share"] == 0 and val_m["share_overall"] == pytest.approx(2 / 6)


def predictions():
    # Group f: 4 images, 3 right (a recall 1/2, b recall 1); group m: 4 images, all right; group x: 1.
    return pd.DataFrame({"label":     ["a", "a", "b", "b", "a", "a", "b", "b", "a"],
                         "predicted": ["a", "b", "b", "b", "a", "a", "b", "b", "b"],
                         "group":     ["f", "f", "f", "f", "m", "m", "m", "m", "x"]})


def test_group_metrics_match_hand_computed_values():
    table = predictions()
    result = group_metrics(table, table["group"], ["a", "b"], min_group_size=2, n_boot=0)
    groups = {g["group"]: g for g in result["groups"]}
    assert groups["f"]["accuracy"] == pytest.approx(0.75) and groups["m"]["accuracy"] == 1.0
    assert groups["f"]["balanced_accuracy"] == pytest.approx((0.5 + 1) / 2)
    assert groups["f"]["recall:a"] == pytest.approx(0.5) and groups["f"]["recall:b"] == 1.0
    assert groups["f"]["selection_rate:b"] == pytest.approx(0.75)
    assert groups["x"]["n"] == 1 and not groups["x"]["judged"] and result["too_small"] == ["x"]
    gap = result["gaps"]["accuracy"]
    assert gap["difference"] == pytest.approx(0.25) and gap["ratio"] == pytest.approx(0.75)
    assert (gap["best_group"], gap["worst_group"]) == ("m", "f")  # x (accuracy 0) is not judged
    assert "selection_rate:a" not in result["gaps"]


def test_gap_intervals_come_from_the_bootstrap():
    rng = np.random.default_rng(1)
    n = 400
    group = rng.choice(["f", "m"], n)
    label = rng.choice(["a", "b"], n)
    right = rng.random(n) < np.where(group == "f", 0.7, 0.9)
    table = pd.DataFrame({"label": label, "predicted": np.where(right, label, np.where(label == "a", "b", "a"))})
    result = group_metrics(table, pd.Series(group), ["a", "b"], min_group_size=30, n_boot=100, seed=3)
    gap = result["gaps"]["accuracy"]
    assert gap["difference_low"] < gap["difference"] < gap["difference_high"]
    assert gap["difference_low"] > 0.05  # a real gap of about 0.2
    again = group_metrics(table, pd.Series(group), ["a", "b"], min_group_size=30, n_boot=100, seed=3)
    assert again["gaps"]["accuracy"] == gap  # seeded


def test_a_single_judged_group_gives_no_gap():
    table = predictions()
    result = group_metrics(table, table["group"], ["a", "b"], min_group_size=5, n_boot=0)
    assert result["gaps"] == {} and "no gap can be judged" in result["note"]
