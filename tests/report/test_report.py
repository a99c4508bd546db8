"""The report's pure parts: the diagnosis of a run, the image grids, the page helpers."""

import numpy as np
import pandas as pd
from PIL import Image

from imgclf.report.diagnosis import (ACTIONS, data_findings, diagnose_run, epoch_findings, fitting_findings,
                                     prediction_findings, saliency_findings, update_findings)
from imgclf.core.job import write_file
from imgclf.report.gallery import confident_mistakes, plot_class_samples, plot_mistakes, sample_per_class
from imgclf.report.page import config_hash, figure, table

TARGETS = [{"metric": "accuracy", "min": 0.9}]


def history(loss, val_loss, accuracy, val_accuracy):
    return pd.DataFrame({"epoch": range(1, len(loss) + 1), "loss": loss, "val_loss": val_loss,
                         "accuracy": accuracy, "val_accuracy": val_accuracy})


def moving(epochs=5, change=0.3):
    """Weight-change records of a healthy run: kernels move, biases start at zero."""
    return [{"epoch": e, "layer": layer, "weight": weight, "relative_change": change * e / epochs if weight == "kernel"
             else (0.0 if e == 0 else 1e12), "mean_abs": 0.05}
            for e in range(epochs + 1) for layer in ("conv1", "dense") for weight in ("kernel", "bias")]


HEALTHY = history([1.0, 0.5, 0.3, 0.2, 0.15], [1.0, 0.6, 0.4, 0.3, 0.28], [0.6, 0.85, 0.93, 0.96, 0.97],
                  [0.6, 0.8, 0.9, 0.93, 0.94])


def test_a_healthy_run_that_meets_its_targets_is_told_to_deploy():
    result = diagnose_run(HEALTHY, moving(), TARGETS, [], targets_met=True)
    assert result["findings"] == [] and result["next_action"] == ACTIONS["met"]
    missed = diagnose_run(HEALTHY, moving(), TARGETS, [], targets_met=False)
    assert missed["next_action"] == ACTIONS["hyperparameters"]


def test_overfitting_is_found_with_the_epoch_it_starts():
    rising = history([1.0, 0.5, 0.3, 0.2, 0.1, 0.05], [1.0, 0.6, 0.5, 0.6, 0.8, 1.0],
                     [0.6, 0.85, 0.93, 0.96, 0.98, 0.99], [0.6, 0.8, 0.85, 0.84, 0.82, 0.80])
    (finding,) = fitting_findings(rising, TARGETS)
    assert finding["kind"] == "overfitting" and finding["from_epoch"] == 4
    assert "overfitting from epoch 4" in finding["message"] and finding["action"] == ACTIONS["overfitting"]
    # The worked example of docs/practices.md section 7: the loss rises but the accuracy still improves.
    overconfident = rising.assign(val_accuracy=[0.6, 0.8, 0.85, 0.86, 0.88, 0.9])
    (finding,) = fitting_findings(overconfident, TARGETS)
    assert finding["variant"] == "overconfident" and finding["action"] == ACTIONS["overconfident"]
    assert fitting_findings(HEALTHY, TARGETS) == []
    one_bad_epoch = history([1.0, 0.5, 0.3, 0.2], [1.0, 0.6, 0.4, 0.8], [0.6, 0.85, 0.93, 0.96], [0.6, 0.8, 0.9, 0.9])
    assert fitting_findings(one_bad_epoch, TARGETS) == []  # noise, not a trend


def test_underfitting_is_the_training_metric_below_the_target():
    flat = history([2.0, 1.9, 1.85], [2.0, 1.95, 1.9], [0.3, 0.35, 0.4], [0.3, 0.33, 0.36])
    (finding,) = fitting_findings(flat, TARGETS)
    assert finding["kind"] == "underfitting" and "peaked at 0.400" in finding["message"]
    assert fitting_findings(flat, []) == []  # no accuracy target: nothing to judge against


def test_exploding_and_frozen_updates():
    nan = history([1.0, 5.0, float("nan")], [1.0, 9.0, float("nan")], [0.5, 0.2, 0.1], [0.5, 0.1, 0.1])
    (finding,) = update_findings(nan, moving())
    assert finding["variant"] == "exploded" and finding["epoch"] == 3
    blown = moving() + [{"epoch": 5, "layer": "classifier", "weight": "kernel", "relative_change": 40.0,
                         "mean_abs": 3.0}]
    assert "classifier/kernel" in update_findings(HEALTHY, blown)[0]["message"]
    frozen = update_findings(HEALTHY, moving(change=1e-5))
    assert [f["variant"] for f in frozen] == ["frozen"]
    assert update_findings(HEALTHY, moving()) == []  # biases moving from zero are not a blow-up


def test_findings_follow_the_order_of_practices_and_the_first_decides():
    data = data_findings([{"severity": "warning", "message": "class imbalance 12:1", "hint": "h"},
                          {"severity": "note", "message": "sizes"}],
                         [{"column": "site", "message": "site is associated with the label"}])
    assert [f["message"] for f in data] == ["validation: class imbalance 12:1",
                                            "bias audit (site): site is associated with the label"]
    rising = history([1.0, 0.5, 0.3, 0.2, 0.1], [1.0, 0.6, 0.5, 0.7, 0.9], [0.5, 0.6, 0.7, 0.8, 0.85],
                     [0.5, 0.6, 0.65, 0.6, 0.55])
    result = diagnose_run(rising, moving(), TARGETS, data, targets_met=False)
    assert [f["kind"] for f in result["findings"]] == ["data", "data", "underfitting", "overfitting"]
    assert result["next_action"] == ACTIONS["data"] and result["reason"].startswith("data: validation")
    # Divergence overrides: the curves of a diverged run say nothing about its data.
    nan = rising.assign(loss=[1.0, 2.0, float("inf"), float("nan"), float("nan")])
    assert diagnose_run(nan, moving(), TARGETS, data, targets_met=False)["next_action"] == ACTIONS["exploded"]


def test_a_minor_data_warning_is_listed_but_never_sets_the_next_action():
    """22 of 6,009 images without an age must not outrank a model far below its target."""
    data = data_findings([{"severity": "warning", "code": "metadata_missing_value", "count": 22,
                           "message": "age is empty for 22 images"},
                          {"severity": "warning", "code": "class_imbalance", "count": 2,
                           "message": "class imbalance 64:1"}], [], n_images=6009)
    assert [f["severity"] for f in data] == ["note", "warning"]  # imbalance matters whatever its count
    assert "minor: 22 of 6009 images" in data[0]["message"]
    underfit = history([1.0, 0.9, 0.85], [1.0, 0.95, 0.9], [0.5, 0.55, 0.6], [0.5, 0.52, 0.55])
    minor_only = diagnose_run(underfit, moving(), TARGETS, data[:1], targets_met=False)
    assert minor_only["findings"][0]["severity"] == "note"
    assert minor_only["next_action"] == ACTIONS["underfitting"]
    assert diagnose_run(underfit, moving(), TARGETS, data, targets_met=False)["next_action"] == ACTIONS["data"]


def test_a_best_epoch_at_either_end_is_diagnosed():
    still = history([1.0, 0.6, 0.4, 0.3], [1.0, 0.7, 0.5, 0.45], [0.5, 0.7, 0.8, 0.85], [0.5, 0.65, 0.75, 0.8])
    (finding,) = epoch_findings(still, {"best_epoch": 4, "status": "completed", "monitor": "val_loss"})
    assert finding["variant"] == "still_improving" and "val_loss was still improving" in finding["message"]
    result = diagnose_run(still, moving(), [], [], None, {"best_epoch": 4, "status": "completed",
                                                          "monitor": "val_loss"})
    assert result["next_action"] == ACTIONS["still_improving"]
    # Early stopping ended it: the best epoch cannot be the last.
    assert epoch_findings(still, {"best_epoch": 2, "status": "early_stopped"}) == []
    (first,) = epoch_findings(still, {"best_epoch": 1, "status": "early_stopped", "monitor": "val_loss"})
    assert first["variant"] == "first_epoch" and "first of 4" in first["message"]
    assert epoch_findings(still, {"best_epoch": 3, "status": "completed"}) == []


def test_a_model_predicting_one_class_for_most_images_is_flagged():
    (finding,) = prediction_findings([[60, 0], [35, 5]], ["nv", "mel"])
    assert finding["variant"] == "one_class" and "predicts nv for 95%" in finding["message"]
    assert prediction_findings([[50, 10], [10, 30]], ["nv", "mel"]) == []
    assert prediction_findings([[90, 0], [5, 5]], ["nv", "mel"]) == []  # 95% predicted, 90% true: not collapsed
    result = diagnose_run(HEALTHY, moving(), TARGETS, [], False, test={"confusion_matrix": [[60, 0], [35, 5]]},
                          class_names=["nv", "mel"])
    assert result["next_action"] == ACTIONS["one_class"]


def test_galleries_sample_per_class_and_sort_mistakes_by_confidence(tmp_path):
    rows = []
    for label, value in (("a", 0), ("b", 255)):
        for i in range(5):
            path = tmp_path / label / f"{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((8, 8), value, np.uint8), "L").save(path)
            rows.append({"path": f"{label}/{i}.png", "label": label})
    manifest = pd.DataFrame(rows)
    samples = sample_per_class(manifest, 3, seed=1)
    assert samples["label"].value_counts().to_dict() == {"a": 3, "b": 3}
    assert samples.equals(sample_per_class(manifest, 3, seed=1))
    write_file(tmp_path / "samples.png", plot_class_samples(samples, tmp_path, 3))
    predictions = manifest.assign(predicted=["b", "a", "a", "a", "a", "a", "b", "b", "b", "b"],
                                  confidence=[0.6, 0.9, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.9])
    mistakes = confident_mistakes(predictions, 5)
    assert mistakes["path"].tolist() == ["b/0.png", "a/0.png"]
    write_file(tmp_path / "mistakes.png", plot_mistakes(mistakes, tmp_path, "title"))
    assert Image.open(tmp_path / "samples.png").size[0] > 100 and (tmp_path / "mistakes.png").stat().st_size > 0


def test_page_helpers_escape_and_embed(tmp_path):
    html = table([{"name": "<b>", "value": 0.123456789}])
    assert "&lt;b&gt;" in html and ">0.1235<" in html
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    assert figure(tmp_path / "x.png", "x").startswith('<img src="data:image/png;base64,')
    assert "not produced" in figure(tmp_path / "absent.png", "absent")
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})


def test_changes_are_read_from_real_weight_samples(fold, tmp_path):
    """The diagnosis reads the records a real training writes (one epoch of a tiny CNN)."""
    from imgclf.core.config import validate_config
    from imgclf.report.diagnosis import changes_from_weight_samples
    from imgclf.core import runtime

    runtime.configure(0, 1)
    from imgclf.training.loop import RunFiles
    from imgclf.training.run import run_training

    config = validate_config({"data": {"image_size": [16, 16]}, "train": {"epochs": 2, "batch_size": 8,
                                                                         "tensorboard_histogram_freq": 0}})
    files = RunFiles(history=tmp_path / "history.csv", best_weights=tmp_path / "best.weights.h5",
                     weight_samples=tmp_path / "samples.npz", resume_dir=tmp_path / "resume")
    run_training(config, fold, files, 8)
    changes = changes_from_weight_samples(str(files.weight_samples))
    assert {c["epoch"] for c in changes} == {0, 1, 2}
    assert not [f for f in update_findings(pd.read_csv(files.history), changes) if f["variant"] == "frozen"]


def test_sixteen_bit_images_are_shown_stretched_not_clipped(tmp_path):
    from imgclf.report.gallery import _thumbnail

    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 60)  # 12-bit range in a 16-bit PNG
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = _thumbnail(tmp_path / "deep.png", size=16)
    assert pixels.shape == (16, 16, 3) and pixels.min() == 0 and pixels.max() == 255
    assert (pixels == 255).mean() < 0.1  # not washed out to white


def test_saliency_on_the_border_is_a_material_data_finding_that_sets_the_next_action():
    warning = {"code": "saliency_on_border", "severity": "warning", "hint": "crop the rulers",
               "message": "class 'mel': on average 71% of the model's Grad-CAM saliency lies in the outer 10%"}
    (finding,) = saliency_findings([warning])
    assert finding["kind"] == "data" and finding["severity"] == "warning" and finding["hint"] == "crop the rulers"
    result = diagnose_run(HEALTHY, moving(), TARGETS, saliency_findings([warning]), False)
    assert result["next_action"] == ACTIONS["saliency"] and "saliency: class 'mel'" in result["reason"]
    assert saliency_findings([]) == []
