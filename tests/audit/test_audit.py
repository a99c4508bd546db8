"""Bias audit core: binning, image slices, association, representation, per-group metrics."""

import numpy as np
import pandas as pd
import pytest

from imgclf.audit.groups import (MISSING, association, bin_numeric, group_metrics, group_table, image_slices,
                          representation)
from imgclf.core.errors import ConfigError


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


def synthetic_index(n=200, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.choice(["ill", "well"], n)
    scanner = np.where(label == "ill", rng.choice(["portable", "fixed"], n, p=[0.9, 0.1]),
                       rng.choice(["portable", "fixed"], n, p=[0.1, 0.9]))
    return pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "label": label, "scanner": scanner,
                         "site": rng.choice(["a", "b"], n), "age": rng.integers(20, 90, n).astype(str),
                         "width": 32, "height": 32, "brightness": rng.random(n), "contrast": rng.random(n),
                         "sharpness": rng.random(n)})


def audit_config(**audit):
    from imgclf.core.config import validate_config

    return validate_config({"data": {"group_columns": ["scanner", "site", "age"]}, "audit": audit})


def test_data_audit_turns_association_into_warnings_or_failures():
    from imgclf.audit.groups import audit_data

    index = synthetic_index()
    sets = {"train": index.iloc[:120], "val": index.iloc[120:160], "test": index.iloc[160:][["path"]]}
    result = audit_data(index, sets, audit_config(numeric_bins={"age": [0, 50, 100]}))
    flagged = {f["column"]: f["severity"] for f in result["findings"]}
    assert flagged == {"scanner": "warning"}
    assert {r["group"] for r in result["columns"]["age"]["representation"]} == {"[0, 50)", "[50, 100]"}
    failing = audit_data(index, sets, audit_config(association_failure=0.5))
    assert [f["severity"] for f in failing["findings"] if f["column"] == "scanner"] == ["error"]


def test_model_audit_judges_the_gap_over_seeds():
    from imgclf.audit.groups import audit_models, group_metrics_table

    index = synthetic_index(400)
    test = index.iloc[200:]
    # Every model is right on fixed-scanner images and wrong on a third of portable ones.
    wrong = (test["scanner"] == "portable").to_numpy() & (np.arange(len(test)) % 3 == 0)
    predicted = np.where(wrong, np.where(test["label"] == "ill", "well", "ill"), test["label"])
    frame = pd.DataFrame({"path": test["path"].to_numpy(), "label": test["label"].to_numpy(), "predicted": predicted})
    config = audit_config(bootstrap=20, image_slices=False, group_columns=["scanner", "site"], gap_warning=0.15)
    result = audit_models({1: frame, 2: frame}, index, index.iloc[:200], ["ill", "well"], config)
    scanner = result["summary"]["scanner"]
    assert scanner["worst_group"] == "portable" and scanner["mean_difference"] == pytest.approx(
        1 - (1 - wrong[test["scanner"].to_numpy() == "portable"].mean()))
    assert [f["column"] for f in result["findings"]] == ["scanner"]
    table = group_metrics_table(result["per_seed"])
    assert set(table["seed"]) == {"1", "2"} and set(table["column"]) == {"scanner", "site"}
    strict = audit_models({1: frame}, index, index.iloc[:200], ["ill", "well"],
                          audit_config(bootstrap=0, image_slices=False, group_columns=["scanner"], gap_failure=0.1))
    assert strict["findings"][0]["severity"] == "error"


def test_audit_settings_are_checked_when_the_workflow_loads():
    from imgclf.audit.groups import check_audit
    from imgclf.core.config import validate_config

    with pytest.raises(ConfigError, match="'site', which is not in data.group_columns"):
        check_audit(validate_config({"data": {"group_columns": ["sex"]}, "audit": {"group_columns": ["site"]}}))
    with pytest.raises(ConfigError, match="'age', which is not an audited column"):
        check_audit(validate_config({"data": {"group_columns": ["sex"]}, "audit": {"numeric_bins": {"age": 3}}}))
    check_audit(validate_config({"audit": {"numeric_bins": {"age": 3}}}))  # columns known once the metadata is read


def test_vectorised_bootstrap_matches_a_plain_loop_over_resamples():
    """The counts-based bootstrap gives what recomputing each resample by hand gives."""
    rng = np.random.default_rng(5)
    n, n_boot, seed = 120, 30, 11
    group = pd.Series(rng.choice(["f", "m", "x"], n))
    label = rng.choice(["a", "b", "c"], n)
    predicted = np.where(rng.random(n) < 0.7, label, rng.choice(["a", "b", "c"], n))
    table = pd.DataFrame({"label": label, "predicted": predicted})
    result = group_metrics(table, group, ["a", "b", "c"], min_group_size=1, n_boot=n_boot, seed=seed)
    rows = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    gaps, recalls_f = [], []
    for b in range(n_boot):
        sample = table.iloc[rows[b]].assign(group=group.to_numpy()[rows[b]])
        by_group = sample.groupby("group").apply(lambda s: (s["label"] == s["predicted"]).mean())
        gaps.append(by_group.max() - by_group.min())
        f = sample[(sample["group"] == "f") & (sample["label"] == "a")]
        recalls_f.append((f["predicted"] == "a").mean() if len(f) else np.nan)
    gap = result["gaps"]["accuracy"]
    assert (gap["difference_low"], gap["difference_high"]) == pytest.approx(tuple(np.quantile(gaps, [0.025, 0.975])))
    f_row = next(g for g in result["groups"] if g["group"] == "f")
    assert (f_row["recall:a_low"], f_row["recall:a_high"]) == pytest.approx(
        tuple(np.nanquantile(recalls_f, [0.025, 0.975])))
    assert f_row["accuracy_low"] <= f_row["accuracy"] <= f_row["accuracy_high"]


def test_a_group_absent_from_a_set_is_a_documented_warning():
    """A group with no test image cannot be judged after training: the data audit says so before."""
    from imgclf.audit.groups import audit_data

    index = synthetic_index()
    index.loc[:159, "site"] = "a"
    index.loc[160:, "site"] = "b"  # site b only in the test set, site a never in it
    sets = {"train": index.iloc[:120], "val": index.iloc[120:160], "test": index.iloc[160:][["path"]]}
    result = audit_data(index, sets, audit_config(image_slices=False))
    messages = [f["message"] for f in result["findings"] if f["column"] == "site"]
    assert "group 'a' of site has no image in the test set" in messages
    assert "group 'b' of site has no image in the train set" in messages


def test_the_split_unit_is_not_audited_by_default_and_absent_groups_are_grouped():
    from imgclf.audit.groups import audit_columns, audit_data
    from imgclf.core.config import validate_config

    config = validate_config({"data": {"group_columns": ["patient", "site"]}, "split": {"group_column": "patient"}})
    assert audit_columns(config) == ["site"]
    index = synthetic_index()
    index["patient"] = [f"P{i:03d}" for i in range(len(index))]  # one image each: in one set each
    sets = {"train": index.iloc[:120], "val": index.iloc[120:160], "test": index.iloc[160:][["path"]]}
    everything = validate_config({"data": {"group_columns": ["patient"]}, "audit": {"group_columns": ["patient"],
                                                                                    "image_slices": False}})
    findings = [f["message"] for f in audit_data(index, sets, everything)["findings"] if "no image" in f["message"]]
    assert len(findings) == 3 and findings[0].startswith("80 groups of patient ('P120', 'P121'")
    assert "and 75 more) have no image in the train set" in findings[0]


def test_gap_metric_and_out_of_range_values():
    from imgclf.audit.groups import OUT_OF_RANGE, check_audit
    from imgclf.core.config import validate_config

    with pytest.raises(ConfigError, match="audit.gap_metric is 'Accuracy'"):
        check_audit(validate_config({"audit": {"gap_metric": "Accuracy"}}))
    with pytest.raises(ConfigError, match="no class 'mel'"):
        check_audit(validate_config({"audit": {"gap_metric": "recall:mel"}}), ["nv", "bcc"])
    check_audit(validate_config({"audit": {"gap_metric": "recall:mel"}}), ["nv", "mel"])
    assert bin_numeric(pd.Series(["130", "-1", "50"]), [0, 120]).tolist() == [OUT_OF_RANGE, OUT_OF_RANGE,
                                                                              "[0, 120]"]


def test_an_audit_without_predictions_is_a_clear_error():
    from imgclf.audit.groups import audit_models
    from imgclf.core.errors import ImgclfError

    with pytest.raises(ImgclfError, match="no predictions to audit"):
        audit_models({}, synthetic_index(), synthetic_index(), ["ill", "well"], audit_config())


def test_the_audit_rules_settings_carry_the_split_unit_so_it_stays_out():
    """The rules pass audit_settings(config) as params; the script validates them (filling
    defaults): without split.group_column there, the patient id was audited again."""
    from imgclf.audit.groups import audit_columns, audit_settings
    from imgclf.core.config import validate_config

    config = validate_config({"data": {"source": "digits", "group_columns": ["patient", "site"]},
                              "split": {"group_column": "patient"}})
    params = validate_config(audit_settings(config))
    assert audit_columns(params) == ["site"]


def test_the_data_audit_job_writes_its_gate_only_when_it_passes(tmp_path):
    import logging

    from imgclf.audit import audit_data, audit_settings
    from imgclf.core.config import validate_config
    from imgclf.core.errors import ImgclfError
    from imgclf.core.io import write_csv

    rng = np.random.default_rng(0)
    n = 120
    label = np.repeat(["a", "b"], n // 2)
    # A site that goes with the label: a spurious-correlation risk.
    site = np.where(rng.random(n) < 0.9, np.where(label == "a", "s1", "s2"), np.where(label == "a", "s2", "s1"))
    index = pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "sha256": [str(i) for i in range(n)],
                          "label": label, "site": site, "width": 32, "height": 32, "brightness": rng.random(n),
                          "contrast": rng.random(n), "sharpness": rng.random(n)})
    write_csv(tmp_path / "index.csv", index)
    write_csv(tmp_path / "train.csv", index.iloc[::2][["path", "sha256", "label"]])
    write_csv(tmp_path / "val.csv", index.iloc[1::4][["path", "sha256", "label"]])
    log = logging.getLogger("test.audit")
    config = validate_config({"data": {"group_columns": ["site"]}})
    result = audit_data(audit_settings(config), tmp_path / "index.csv", tmp_path / "train.csv",
                        tmp_path / "val.csv", log)
    assert list(result) == ["representation", "audit", "passed"] and result["passed"] == {"passed": True}
    assert set(result["representation"]["column"]) >= {"site"}
    assert any(f["column"] == "site" and f["severity"] == "warning" for f in result["audit"]["findings"])
    failing = validate_config({"data": {"group_columns": ["site"]}, "audit": {"association_failure": 0.5}})
    with pytest.raises(ImgclfError, match="the data audit failed: site is associated with the label"):
        audit_data(audit_settings(failing), tmp_path / "index.csv", tmp_path / "train.csv", tmp_path / "val.csv", log)
