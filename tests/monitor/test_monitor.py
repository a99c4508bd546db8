"""Drift monitoring of a batch: listing, reading (bad files as in validation), the report."""

import numpy as np
import pandas as pd
import pytest

from conftest import make_folder, pattern, save, write_bad_file
from imgclf.core.errors import DataValidationError, ImgclfError
from imgclf.monitor.batches import drift_markdown, drift_report, inspect_batch, list_batch, stratified_draw
from imgclf.report.deployment import drift_section
from imgclf.data.validation import ValidationOptions

SETTINGS = {"alpha": 0.05, "permutations": 100, "outlier_score": 3.5, "evolution_share": 0.5}


def test_a_flat_folder_is_an_unlabelled_batch_and_class_folders_a_labelled_one(tmp_path):
    flat = tmp_path / "flat"
    for i in range(3):
        save(pattern(i), flat / f"{i}.png")
    (flat / "notes.txt").write_text("scanned on Monday")
    batch = list_batch("flat", {"path": str(flat)})
    assert batch.source == "flat folder" and not batch.labelled
    assert batch.entries["path"].tolist() == ["0.png", "1.png", "2.png"] and batch.entries["label"].isna().all()
    assert batch.findings[0].code == "non_image_file" and batch.findings[0].files == ["notes.txt"]
    labelled = list_batch("lab", {"path": str(make_folder(tmp_path / "lab", {"a": 2, "b": 1}))})
    assert labelled.labelled and labelled.entries["label"].tolist() == ["a", "a", "b"]


def test_a_manifest_batch_with_and_without_labels(tmp_path):
    for i in range(3):
        save(pattern(i), tmp_path / "img" / f"{i}.png")
    (tmp_path / "with.csv").write_text("path,label\nimg/0.png,a\nimg/1.png,b\nimg/2.png,a\n")
    (tmp_path / "without.csv").write_text("file\nimg/0.png\nimg/1.png\n")
    batch = list_batch("w", {"path": str(tmp_path / "with.csv")})
    assert batch.labelled and batch.entries["label"].tolist() == ["a", "b", "a"]
    batch = list_batch("wo", {"path": str(tmp_path / "without.csv"), "path_column": "file"})
    assert not batch.labelled and batch.entries["path"].tolist() == ["img/0.png", "img/1.png"]
    with pytest.raises(ImgclfError, match="(?s)no column 'truth'.*monitor.batches.wo.label_column"):
        list_batch("wo", {"path": str(tmp_path / "without.csv"), "path_column": "file", "label_column": "truth"})


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "does not exist"),
    (lambda root: root.mkdir(), "holds no image"),
    (lambda root: (save(pattern(0), root / "a.png"), save(pattern(1), root / "cls" / "b.png")),
     "holds both images and sub-folders"),
])
def test_bad_batch_folders_are_clear_errors(tmp_path, setup, message):
    root = tmp_path / "batch"
    setup(root)
    with pytest.raises(ImgclfError, match=message) as error:
        list_batch("new", {"path": str(root)})
    assert "What to do" in str(error.value)


def test_bad_files_stop_the_batch_or_are_dropped_as_in_validation(tmp_path):
    root = tmp_path / "batch"
    for i in range(4):
        save(pattern(i), root / f"{i}.png")
    write_bad_file(root / "broken.jpg", "truncated.jpg")
    write_bad_file(root / "empty.png", "empty.png")
    batch = list_batch("new", {"path": str(root)})
    with pytest.raises(DataValidationError) as error:
        inspect_batch(batch, ValidationOptions(on_bad_file="fail"))
    text = str(error.value)
    assert "2 of 6 file(s) cannot be used" in text and "broken.jpg" in text and "empty.png" in text
    assert "monitor.on_bad_file: drop" in text
    images, dropped = inspect_batch(batch, ValidationOptions(on_bad_file="drop"))
    assert images["path"].tolist() == ["0.png", "1.png", "2.png", "3.png"]
    assert {d["path"]: d["problem"] for d in dropped} == {"broken.jpg": "truncated", "empty.png": "zero_byte"}
    assert set(images.columns) >= {"brightness", "contrast", "sharpness", "width", "height", "mode"}


def test_a_batch_of_only_bad_files_is_an_error_even_when_dropping(tmp_path):
    root = tmp_path / "batch"
    write_bad_file(root / "text.jpg", "text.jpg")
    with pytest.raises(DataValidationError, match="none of its 1 file"):
        inspect_batch(list_batch("new", {"path": str(root)}), ValidationOptions(on_bad_file="drop"))


def stats(n, seed, brightness=0.3, size=16, mode="L"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"path": [f"{seed}_{i}.png" for i in range(n)], "brightness": rng.normal(brightness, 0.05, n),
                         "contrast": rng.normal(0.3, 0.03, n), "sharpness": rng.gamma(4, 0.01, n),
                         "width": size, "height": size, "mode": mode})


def outputs(n, seed, shift=0.0, classes=("a", "b"), confidence=(0.8, 1.0)):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(shift, 1, (n, 6))
    predictions = pd.DataFrame({"predicted": rng.choice(classes, n), "confidence": rng.uniform(*confidence, n),
                                "label": pd.NA})
    return embeddings, predictions


def report_for(batch_images, batch_embeddings, batch_predictions):
    ref_emb, ref_pred = outputs(300, 0)
    return drift_report(stats(400, 0), batch_images, ref_emb, batch_embeddings, ref_pred, batch_predictions,
                        ["a", "b"], {"correct": 180, "n": 200}, SETTINGS, seed=1)


def test_an_unshifted_batch_calls_for_no_action():
    emb, pred = outputs(120, 5)
    report = report_for(stats(120, 5), emb, pred)
    assert report["drifting"] == [] and report["recommendation"]["action"] == "no action"
    assert report["signals"]["performance"]["drift"] is None and report["n_labelled"] == 0
    assert len(report["outlier_scores"]) == 120
    markdown = drift_markdown("steady", report)
    assert "**Recommendation: no action.**" in markdown and "not measured" in markdown


def test_a_batch_from_another_device_is_an_evolution():
    emb, pred = outputs(120, 6, shift=1.0)
    images = stats(120, 6, brightness=0.6, size=24, mode="RGB")
    report = report_for(images, emb, pred)
    assert set(report["drifting"]) == {"images", "embeddings"}
    assert report["outliers"]["share"] == 1.0 and report["recommendation"]["action"] == "retrain favouring the new images"
    codes = {f["code"] for f in report["findings"]}
    assert codes == {"new_image_mode", "new_image_size"}
    assert "24x24" in next(f["message"] for f in report["findings"] if f["code"] == "new_image_size")


def test_more_variable_images_call_for_adding_them():
    emb, pred = outputs(150, 5)
    pred = outputs(300, 0)[1].iloc[::2].reset_index(drop=True)  # the reference's own predictions
    images = stats(150, 7)
    images["brightness"] = np.random.default_rng(7).normal(0.3, 0.08, 150)  # wider, mostly in range
    report = report_for(images, emb, pred)
    assert report["drifting"] == ["images"] and report["outliers"]["share"] < 0.5
    assert report["recommendation"]["action"] == "retrain adding the new images to the old ones"


def test_labels_bring_the_performance_and_unknown_classes_a_finding():
    emb, pred = outputs(100, 8)
    pred["label"] = np.where(np.arange(100) < 60, pred["predicted"], "c")  # 60 right, 40 of a new class
    report = report_for(stats(100, 8), emb, pred)
    perf = report["signals"]["performance"]
    assert perf["n"] == 60 and perf["accuracy"] == 1.0 and not perf["drift"]
    assert report["findings"][0]["code"] == "unknown_label" and "40 image(s) are labelled c" in report["findings"][0]["message"]
    assert report["recommendation"]["action"] == "retrain favouring the new images"
    pred["label"] = np.where(np.arange(100) < 50, pred["predicted"], np.where(pred["predicted"] == "a", "b", "a"))
    worse = report_for(stats(100, 8), emb, pred)["signals"]["performance"]
    assert worse["accuracy"] == 0.5 and worse["drift"] and worse["p_value"] < 1e-6


def test_the_reference_draw_is_seeded_and_stratified():
    table = pd.DataFrame({"path": [f"{i:03d}" for i in range(100)], "label": ["a"] * 80 + ["b"] * 20})
    drawn = stratified_draw(table, 10, seed=3)
    assert drawn["label"].value_counts().to_dict() == {"a": 8, "b": 2}
    assert drawn.equals(stratified_draw(table, 10, seed=3)) and not drawn.equals(stratified_draw(table, 10, seed=4))
    assert len(stratified_draw(table, 500, seed=3)) == 100


def test_the_html_section_shows_each_batch_and_explains_how_to_monitor():
    assert "make monitor BATCH=" in drift_section([], [], 0.05)
    emb, pred = outputs(100, 9, shift=1.0)
    report = {**report_for(stats(100, 9), emb, pred), "batch": "site_b", "dropped": []}
    html = drift_section([report], ["missing.png"], 0.05)
    assert "Batch site_b: 100 images" in html and "DRIFT" in html and report["recommendation"]["action"] in html


def test_the_summary_job_lists_every_batchs_verdict_and_needs_a_batch(tmp_path):
    import json
    import logging

    from imgclf.monitor import monitor_summary

    log = logging.getLogger("test.monitor")
    report = tmp_path / "site_b" / "drift.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"n_images": 120, "drifting": ["images"],
                                  "recommendation": {"action": "retrain adding the new images to the old ones",
                                                     "reason": "the images drift"}}))
    summary = monitor_summary(["site_b"], [str(report)], log)["summary"]
    assert "| site_b | 120 | images | retrain adding the new images to the old ones | the images drift |" in summary
    with pytest.raises(ImgclfError, match="monitor.batches is empty") as error:
        monitor_summary([], [], log)
    assert "make monitor BATCH=" in str(error.value)
