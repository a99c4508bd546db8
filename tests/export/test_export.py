"""TFLite export (float32, float16, int8) measured against the Keras model, and the model card."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

from imgclf.export import tflite as export  # noqa: E402
from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ImgclfError  # noqa: E402
from imgclf.export.card import SECTIONS, build_model_card, model_card_markdown  # noqa: E402
from imgclf.training.models import build_model  # noqa: E402

CLASSES = ["bars", "stripes", "dots"]


def patterns(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16x16 gray images in [0, 255]: vertical bars, horizontal stripes, a dot grid, with noise."""
    rng = np.random.default_rng(seed)
    grid = np.indices((16, 16))
    bases = [(grid[1] // 2 % 2) * 200.0, (grid[0] // 2 % 2) * 200.0,
             ((grid[0] % 4 == 0) & (grid[1] % 4 == 0)) * 220.0]
    images, labels = [], []
    for label, base in enumerate(bases):
        for _ in range(n_per_class):
            images.append(np.clip(base + rng.normal(0, 30, base.shape), 0, 255))
            labels.append(label)
    return np.asarray(images, np.float32)[..., None], np.asarray(labels, np.int32)


@pytest.fixture(scope="module")
def trained():
    """A tiny small_cnn fitted a few steps, and a labelled test set with two groups."""
    config = validate_config({"model": {"small_cnn": {"filters": [8, 16]}, "dense_units": 16}})
    model = build_model(config["model"], len(CLASSES), (16, 16, 1))
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = patterns(20, seed=1)
    model.fit(x, y, batch_size=20, epochs=4, verbose=0, shuffle=False)
    images, labels = patterns(10, seed=2)
    groups = pd.DataFrame({"site": ["a", "b"] * 15})
    return model, x, images, labels, groups


@pytest.fixture(scope="module")
def exported(trained):
    model, train, images, labels, groups = trained
    representative = train[export.representative_indices(np.repeat([0, 1, 2], 20), 12, seed=0)]
    contents, result = export.export_formats(model, list(export.FORMATS), representative, images, labels, groups,
                                             min_group_size=10, threads=1, latency_runs=5)
    return contents, result


def test_every_format_is_a_tflite_model_that_runs(trained, exported):
    model, _, images, _, _ = trained
    contents, _ = exported
    assert set(contents) == set(export.FORMATS)
    keras = export.keras_proba(model, images)
    for fmt, content in contents.items():
        proba = export.tflite_proba(content, images, threads=1)
        assert proba.shape == keras.shape and np.allclose(proba.sum(axis=1), 1)
        if fmt == "float32":
            np.testing.assert_allclose(proba, keras, atol=1e-4)
    assert len(contents["int8"]) < len(contents["float16"]) < len(contents["float32"])


def test_measurements_are_computed_from_the_same_pixels(trained, exported):
    model, _, images, labels, _ = trained
    contents, result = exported
    keras = export.keras_proba(model, images)
    assert result["keras"]["accuracy"] == pytest.approx((keras.argmax(1) == labels).mean())
    assert result["keras"]["latency_ms"]["median"] > 0
    for fmt, entry in result["formats"].items():
        proba = export.tflite_proba(contents[fmt], images)
        assert entry["sha256"] == hashlib.sha256(contents[fmt]).hexdigest() and entry["bytes"] == len(contents[fmt])
        assert entry["accuracy"] == pytest.approx((proba.argmax(1) == labels).mean())
        assert entry["delta"] == pytest.approx(entry["accuracy"] - result["keras"]["accuracy"])
        assert entry["agreement_with_keras"] == pytest.approx((proba.argmax(1) == keras.argmax(1)).mean())
        assert 0 < entry["latency_ms"]["median"] <= entry["latency_ms"]["p90"] and entry["latency_ms"]["runs"] == 5
        assert [(g["column"], g["group"], g["n"]) for g in entry["per_group"]] == [("site", "a", 15), ("site", "b", 15)]
    assert result["formats"]["float32"]["max_abs_probability_diff"] < 1e-4


def test_conversion_is_deterministic(trained, exported):
    model, train, _, _, _ = trained
    contents, _ = exported
    representative = train[export.representative_indices(np.repeat([0, 1, 2], 20), 12, seed=0)]
    with export.saved_model(model) as folder:
        # A new SavedModel, same bytes: float32 and int8 (calibration included) are reproducible.
        assert export.convert(folder, "float32") == contents["float32"]
        assert export.convert(folder, "int8", representative) == contents["int8"]


def test_accuracy_delta_and_group_deltas_on_a_known_case():
    labels = np.array([0, 0, 1, 1, 1, 0])
    eye = np.eye(2)
    keras = eye[[0, 0, 1, 1, 0, 0]]    # right on 5 of 6 (wrong on the fifth)
    tflite = eye[[0, 1, 1, 1, 0, 1]]    # right on 3 of 6; differs from Keras on the second and the last
    tflite = 0.9 * tflite + 0.05
    result = export.compare_predictions(labels, keras, tflite)
    assert result["accuracy"] == pytest.approx(3 / 6) and result["keras_accuracy"] == pytest.approx(5 / 6)
    assert result["delta"] == pytest.approx(-2 / 6) and result["agreement_with_keras"] == pytest.approx(4 / 6)
    assert result["n_changed"] == 2 and result["max_abs_probability_diff"] == pytest.approx(0.95)
    groups = pd.DataFrame({"site": ["a", "a", "a", "a", "b", "b"]})
    rows = export.group_deltas(labels, keras, tflite, groups, min_group_size=3)
    assert rows == [
        {"column": "site", "group": "a", "n": 4, "judged": True, "keras_accuracy": 1.0, "accuracy": 0.75,
         "delta": -0.25},
        {"column": "site", "group": "b", "n": 2, "judged": False, "keras_accuracy": 0.5, "accuracy": 0.0,
         "delta": -0.5}]
    findings = export.export_findings({"int8": {**result, "per_group": rows},
                                       "float32": {**result, "delta": -0.005, "per_group": []}})
    # int8: its drop and its judged group's; group b is too small to judge; float32 is within 0.01.
    assert [(f["format"], f["column"]) for f in findings] == [("int8", ""), ("int8", "site")]
    assert "drops by 0.3333" in findings[0]["message"] and "'a'" in findings[1]["message"]


def test_representative_draw_is_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    chosen = export.representative_indices(labels, 10, seed=3)
    assert np.bincount(labels[chosen]).tolist() == [5, 3, 2] and list(chosen) == sorted(chosen)
    assert np.array_equal(chosen, export.representative_indices(labels, 10, seed=3))
    assert not np.array_equal(chosen, export.representative_indices(labels, 10, seed=4))
    assert np.bincount(labels[export.representative_indices(labels, 7, seed=0)]).tolist() == [4, 2, 1]
    assert len(export.representative_indices(labels, 500, seed=0)) == 100


def test_bad_format_or_model_is_a_clear_error(tmp_path):
    with pytest.raises(ImgclfError, match="int4.*float32, float16, int8"):
        export.check_formats(["float32", "int4"])
    with pytest.raises(ImgclfError, match="int8 conversion needs representative images"):
        export.convert(str(tmp_path), "int8", None)
    with pytest.raises(ImgclfError, match="the float16 TFLite conversion failed") as error:
        export.convert(str(tmp_path), "float16")
    assert "remove float16 from export.formats" in str(error.value)
    with pytest.raises(ImgclfError, match="not a usable TFLite model"):
        export.interpreter(b"not a flatbuffer")


def test_audit_groups_are_the_audit_columns_in_test_order():
    config = validate_config({})
    settings = export.export_settings(config)["groups"]
    rng = np.random.default_rng(0)
    index = pd.DataFrame({"path": [f"{i}.png" for i in range(12)], "label": ["a", "b"] * 6, "width": 16,
                          "height": 16, "brightness": rng.random(12), "contrast": rng.random(12),
                          "sharpness": rng.random(12), "site": ["x", "y", "z"] * 4})
    groups = export.audit_groups(index, pd.Series(["5.png", "0.png"]), index["path"][:8], settings)
    assert list(groups.columns) == ["site", "image:brightness", "image:contrast", "image:sharpness", "image:size",
                                    "image:aspect_ratio"]
    assert groups["site"].tolist() == ["z", "x"]
    with pytest.raises(ImgclfError, match="not in the index"):
        export.audit_groups(index, pd.Series(["missing.png"]), index["path"], settings)


def test_export_settings_follow_the_config():
    config = validate_config({"export": {"enabled": False, "formats": ["int8"]}})
    settings = export.export_settings(config)
    assert settings["formats"] == ["int8"] and "intended_use" not in settings and "gap_warning" not in str(settings)


def card_sources(exported_result):
    """The JSON files the model card reads, shaped like the pipeline's (only the keys it uses)."""
    deployed = {"chosen": {"seed": 42, "rule": "median_validation", "why": "median val_loss", "monitor": "val_loss",
                           "value": 0.1},
                "classes": CLASSES, "image_size": [16, 16], "channels": 1, "fold": 0, "sha256": "abc",
                "input": "float32 pixels", "test": {"n": 30, "accuracy": 0.9},
                "config": {"data": {"source": "folder", "root": "/data"},
                           "model": {"architecture": "small_cnn", "weights": "none"},
                           "train": {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 32, "epochs": 10}}}
    interval = {"mean": 0.9, "std": 0.01, "low": 0.88, "high": 0.92, "n": 3}
    evaluation = {"aggregate": {"accuracy": interval, "per_class.bars.recall": interval}, "classes": CLASSES,
                  "confidence": 0.95, "seeds": [42, 43, 44], "n_test": 30, "reevaluations": [],
                  "targets": [{"metric_name": "accuracy", "min": 0.95, **interval, "met": False,
                               "met_with_confidence": False}],
                  "all_targets_met": False, "all_targets_met_with_confidence": False}
    split = {"classes": CLASSES, "n_images": 150, "test": {"total": 30},
             "folds": [{"train": {"total": 90}, "val": {"total": 30}}], "leak_check": "passed"}
    validation = {"passed": True, "counts": {"error": 0}, "findings": [],
                  "summary": {"n_listed": 150, "n_usable": 150, "n_bad": 0, "n_dropped": 0, "imbalance_ratio": 1.0}}
    group = {"group": "x", "n": 40, "judged": True, "accuracy": 0.9, "accuracy_low": 0.8, "accuracy_high": 0.95}
    audit_groups = {"metric": "accuracy", "findings": [{"severity": "warning", "column": "site",
                                                        "message": "accuracy differs by 0.200 between sites"}],
                    "summary": {"site": {"mean_difference": 0.2, "worst_group": "y", "too_small": ["z"]}},
                    "per_seed": {"42": {"site": {"groups": [group], "min_group_size": 30, "confidence": 0.95,
                                                 "gaps": {"accuracy": {"difference": 0.2, "difference_low": 0.1,
                                                                       "difference_high": 0.3}}}}}}
    audit_data = {"findings": [{"severity": "warning", "column": "site", "message": "site goes with the label"}]}
    total = {"kwh": 0.5, "kg_co2eq": 0.2, "litres": 0.9, "seconds": 100.0, "attempts": 7}
    carbon = {"total": total, "stages": [{"stage": "final", **total}], "intensity": ["world average"],
              "measures": {"cpu": {"kind": "estimated"}, "gpu": {"kind": "none"}, "ram": {"kind": "estimated"}}}
    flagged = {**exported_result, "keras": {**exported_result["keras"], "bytes": 5000}, "findings": [{"severity": "warning", "format": "int8", "column": "",
                                                "message": "int8: test accuracy drops by 0.0200"}]}
    return deployed, evaluation, split, validation, audit_data, audit_groups, carbon, flagged


def test_model_card_has_every_section_and_names_the_limitations(exported):
    deployed, evaluation, split, validation, audit_data, audit_groups, carbon, export_json = card_sources(exported[1])
    card = build_model_card(deployed, "model.keras", "abc", 1234, evaluation, split, validation, audit_data, audit_groups, carbon,
                            export_json, "Sorting pattern images.", ["Never shown a real photograph."], "2026-01-01")
    assert tuple(card) == SECTIONS
    assert card["model_details"]["deployed_seed"] == 42 and card["data"]["counts"]["train"]["total"] == 90
    assert card["metrics"]["over_seeds"]["accuracy"]["low"] == 0.88
    assert card["per_group"]["columns"]["site"]["deployed_gap"]["difference_high"] == 0.3
    assert card["carbon"]["how"] == "estimated" and card["export"]["formats"]["int8"]["bytes"] > 0
    kinds = [item["kind"] for item in card["limitations"]]
    assert kinds == ["target", "group gap", "data", "group size", "quantization", "evaluation", "user"]
    markdown = model_card_markdown(card)
    for item in card["limitations"]:
        assert f"- {item['text']}" in markdown
    for heading in ("Model details", "Intended use", "Data", "Metrics", "Per-group results", "Carbon cost", "Export",
                    "Limitations"):
        assert f"## {heading}\n" in markdown
    assert "Never shown a real photograph." in markdown and "target not met: accuracy >= 0.95" in markdown
    without = build_model_card(deployed, "model.keras", "abc", 1234, evaluation, split, validation, audit_data, audit_groups,
                               carbon, None, "use", [], "2026-01-01")
    assert without["export"] == {"enabled": False} and "No TFLite export" in model_card_markdown(without)
    with pytest.raises(ImgclfError, match="not the model deploy_model recorded"):
        build_model_card(deployed, "model.keras", "other", 1, evaluation, split, validation, audit_data, audit_groups, carbon,
                         None, "use", [], "2026-01-01")


def test_export_markdown_flags_a_loss(exported):
    _, result = exported
    result = {**result, "keras": {**result["keras"], "bytes": 5000}, "seed": 42, "fold": 0, "n_test": 30, "representative": {"n": 12},
              "latency": {"cpu": "cpu", "threads": 1, "warmup": 5, "runs": 5},
              "thresholds": {"max_accuracy_drop": 0.01, "max_group_drop": 0.05, "min_group_size": 10},
              "formats": {fmt: {**entry, "file": f"model_{fmt}.tflite"} for fmt, entry in result["formats"].items()}}
    result["formats"]["int8"] = {**result["formats"]["int8"], "delta": -0.1}
    result["findings"] = export.export_findings(result["formats"])
    markdown = export.export_markdown(result)
    assert "| TFLite int8 |" in markdown and "-0.1000 (!)" in markdown
    assert "**warning**: int8: test accuracy drops by 0.1000" in markdown
    assert "| site | a | 15 |" in markdown and "model_float16.tflite" in markdown
