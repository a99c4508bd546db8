"""Exploration studies: points from scientific and nuisance values, each point's config, the
load-time checks, and the summary that answers the study's question (its job included)."""

import json

import pandas as pd
import pytest

from imgclf.core.config import validate_config
from imgclf.core.errors import ConfigError
from imgclf.explore import check_studies, expand_study, explore_summary, point_config

STUDY = {"name": "opt", "question": "Which optimizer?", "scientific": {"train.optimizer": ["adam", "sgd"]},
         "nuisance": {"train.learning_rate": {"min": 0.001, "max": 0.1, "samples": 3}},
         "fixed": {"train.epochs": 4}}


def config(*studies):
    return validate_config({"explore": {"studies": list(studies)}})


def test_points_cross_scientific_values_with_seeded_nuisance_samples():
    points = expand_study(STUDY, seed=42)
    assert [p.id for p in points] == ["p00", "p01", "p02", "p03", "p04", "p05"]
    assert [p.scientific["train.optimizer"] for p in points] == ["adam"] * 3 + ["sgd"] * 3
    rates = [p.nuisance["train.learning_rate"] for p in points]
    assert rates[:3] == rates[3:]  # each optimizer meets the same learning rates: a fair comparison
    assert all(0.001 <= r <= 0.1 for r in rates) and len(set(rates)) == 3
    assert rates == [p.nuisance["train.learning_rate"] for p in expand_study(STUDY, seed=42)]
    assert rates != [p.nuisance["train.learning_rate"] for p in expand_study(STUDY, seed=7)]
    listed = {**STUDY, "nuisance": {"train.learning_rate": [0.01, 0.1]}}
    assert [p.label() for p in expand_study(listed, 0)][:2] == ["optimizer=adam, learning_rate=0.01",
                                                                "optimizer=adam, learning_rate=0.1"]


def test_a_points_config_has_the_fixed_and_the_points_values_and_records_divergence():
    base = config(STUDY)
    point = expand_study(STUDY, 42)[4]
    result = point_config(base, STUDY, point)
    assert result["train"]["optimizer"] == "sgd" and result["train"]["epochs"] == 4
    assert result["train"]["learning_rate"] == point.nuisance["train.learning_rate"]
    assert result["train"]["on_divergence"] == "record" and result["explore"]["studies"] == []
    assert base["train"]["epochs"] == 10  # the experiment's config is untouched


@pytest.mark.parametrize("study, message", [
    ({**STUDY, "fixed": {"split.n_folds": 2}}, "split.n_folds cannot vary within a study"),
    ({**STUDY, "scientific": {"train.optimiser": ["adam"]}}, "'train.optimiser' is not a config key"),
    ({**STUDY, "nuisance": {"train.learning_rate": {"min": 0.1, "max": 0.01}}}, "min >= max"),
    ({**STUDY, "nuisance": {"train.learning_rate": {"min": 0.0, "max": 0.01}}}, "log-scaled but min <= 0"),
    ({**STUDY, "nuisance": {"train.optimizer": ["adam"]}}, "both scientific and nuisance"),
])
def test_bad_studies_are_refused_when_the_workflow_loads(study, message):
    with pytest.raises(ConfigError, match=message):
        check_studies(config(study))


def test_two_studies_of_one_name_are_refused():
    with pytest.raises(ConfigError, match="used twice"):
        check_studies(config(STUDY, STUDY))


def point_files(tmp_path, values):
    """metrics.json and history.csv of each point, as explore_point writes them."""
    metrics, histories = [], []
    for i, (status, accuracy) in enumerate(values):
        folder = tmp_path / f"p{i:02d}"
        folder.mkdir()
        record = {"status": status, "best_epoch": 2, "epochs_run": 3, "seconds": 1.0,
                  "at_best_epoch": {"val_accuracy": accuracy}}
        (folder / "metrics.json").write_text(json.dumps(record))
        pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.9],
                      "accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.4, accuracy, accuracy]}
                     ).to_csv(folder / "history.csv", index=False)
        metrics.append(str(folder / "metrics.json"))
        histories.append(str(folder / "history.csv"))
    return metrics, histories


def test_the_summary_answers_the_question_and_flags_a_best_value_at_the_edge(tmp_path):
    import logging

    # adam: best at its second learning rate; sgd: one point diverged, the best is p05.
    metrics, histories = point_files(tmp_path, [("completed", 0.80), ("completed", 0.90), ("completed", 0.85),
                                                ("diverged", None), ("completed", 0.70), ("completed", 0.95)])
    objective = {"name": "val_accuracy", "direction": "max", "why": "no target names a validation metric"}
    result = explore_summary(STUDY, 42, objective, metrics, histories, logging.getLogger("test.explore"))
    summary = result["summary"]
    assert summary["winner"]["train.optimizer"] == "sgd" and summary["winner"]["point"] == "p05"
    assert [b["n_diverged"] for b in summary["best"]] == [0, 1]
    assert summary["answer"].startswith("Best: train.optimizer=sgd with train.learning_rate=")
    assert "Others at their best: train.optimizer=adam: 0.9000" in summary["answer"]
    assert list(result["table"]["point"]) == ["p00", "p01", "p02", "p03", "p04", "p05"]
    assert "**Question:** Which optimizer?" in result["markdown"]
    assert set(result) == {"summary", "table", "markdown", "plot", "best_curves"}
    # The best rate of a value at the lowest or highest rate tried: the optimum may lie beyond.
    rates = [p.nuisance["train.learning_rate"] for p in expand_study(STUDY, 42)]
    sgd_at_edge = rates[5] in (min(rates[3:]), max(rates[3:]))
    adam_at_edge = rates[1] in (min(rates[:3]), max(rates[:3]))
    assert sgd_at_edge == any(flag.startswith("train.optimizer=sgd") for flag in summary["edge_flags"])
    assert adam_at_edge == any(flag.startswith("train.optimizer=adam") for flag in summary["edge_flags"])


def test_the_shipped_study_templates_are_valid_in_the_practices_order():
    """config/examples/exploration_studies.yaml, alone over the schema's defaults (as a
    --configfile is read): every point builds."""
    import yaml

    from imgclf.core.config import validate_config
    from imgclf.explore import check_studies
    from tests.conftest import REPO

    example = yaml.safe_load((REPO / "config" / "examples" / "exploration_studies.yaml").read_text())
    config = validate_config(example)
    check_studies(config)
    names = [s["name"] for s in config["explore"]["studies"]]
    assert names == ["input_size", "width", "augmentation", "regularisation", "optimizer"]
    study = config["explore"]["studies"][0]
    sizes = {tuple(point_config(config, study, p)["data"]["image_size"]) for p in expand_study(study, 42)}
    assert sizes == {(32, 32), (64, 64), (96, 96)}


def test_a_study_may_vary_the_input_size_but_not_which_images():
    from imgclf.core.config import validate_config

    config = validate_config({})
    for key in ("data.root", "split.n_folds", "seed"):
        study = {"name": "s", "question": "q", "scientific": {key: [1, 2]}}
        with pytest.raises(ConfigError, match="cannot vary within a study"):
            point_config(config, study, expand_study(study, 42)[0])


def test_a_study_of_list_values_is_summarised_and_plotted(tmp_path):
    """Input sizes and filter lists are lists: the summary, its table and figures take them."""
    import logging

    study = {"name": "input_size", "question": "Larger inputs?",
             "scientific": {"data.image_size": [[32, 32], [64, 64]]},
             "nuisance": {"train.learning_rate": [0.001, 0.01]}, "fixed": {}}
    metrics, histories = point_files(tmp_path, [("completed", 0.7), ("completed", 0.8), ("completed", 0.9),
                                                ("completed", 0.85)])
    objective = {"name": "val_accuracy", "direction": "max", "why": "test"}
    result = explore_summary(study, 42, objective, metrics, histories, logging.getLogger("test.explore"))
    assert result["summary"]["winner"]["data.image_size"] == [64, 64]
    assert result["summary"]["answer"].startswith("Best: data.image_size=[64, 64]")
    assert "| [64, 64] |" in result["markdown"] or "[64, 64]" in result["markdown"]
