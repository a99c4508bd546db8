"""The benchmarks' recipes are configs the pipeline accepts: a user copies them into a config."""

import copy
import importlib.util

import pytest

from conftest import REPO


def load_transfer_benchmarks():
    spec = importlib.util.spec_from_file_location("transfer_benchmarks", REPO / "benchmarks/transfer_benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCHMARKS = load_transfer_benchmarks()


@pytest.mark.parametrize("method", sorted(BENCHMARKS.METHOD_CONFIGS))
def test_every_recipe_validates_against_the_schema(method):
    from imgclf.core.config import validate_config

    raw = {"seed": 1, **copy.deepcopy(BENCHMARKS.METHOD_CONFIGS[method])}  # validation fills in defaults
    raw["train"] = {**raw["train"], "batch_size": 32}
    config = validate_config(raw)
    assert config["model"]["architecture"] == BENCHMARKS.METHOD_CONFIGS[method]["model"]["architecture"]


def test_every_recipe_can_be_asked_for_on_the_command_line():
    assert set(BENCHMARKS.METHOD_CONFIGS) - {"head_on_features", "head_on_images"} == {
        *BENCHMARKS.METHODS, *BENCHMARKS.RECIPES} - {"tutorial"}
    zoom = BENCHMARKS.METHOD_CONFIGS["small_cnn_balanced_deep64_zoom"]["train"]["augmentation"]
    assert zoom["zoom"] == 0.1 and zoom["contrast"] == 0.2
    # The deep copy keeps the recipe it extends as it was.
    assert not BENCHMARKS.METHOD_CONFIGS["small_cnn_balanced_deep64_patient"]["train"]["augmentation"].get("zoom")


def test_seed_ensemble_averages_the_seeds_probabilities(tmp_path):
    import pandas as pd

    pd.DataFrame({"path": ["a/1.png", "b/2.png", "a/3.png"], "label": ["a", "b", "a"]}).to_csv(
        tmp_path / "index.csv", index=False)
    pd.DataFrame({"path": ["a/1.png", "b/2.png", "a/3.png"], "label": ["a", "b", "a"]}).to_csv(
        tmp_path / "test.csv", index=False)
    # Seed 1 calls image 2 "a" and seed 2 is surer of "b": the average calls it "b". Both call image 3 "b".
    runs = [{"test_probabilities": [[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]]},
            {"test_probabilities": [[0.6, 0.4], [0.2, 0.8], [0.45, 0.55]]}]
    together = BENCHMARKS.seed_ensemble(tmp_path, runs)
    assert together["test_accuracy"] == pytest.approx(2 / 3)
    assert together["test_balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    # A run saved before the probabilities were kept: no ensemble rather than a wrong one.
    assert BENCHMARKS.seed_ensemble(tmp_path, [*runs, {"test_accuracy": 0.5}]) is None


def test_a_run_fingerprint_follows_its_settings_and_manifests_not_the_other_recipes(tmp_path, monkeypatch):
    for name in ("train.csv", "val.csv", "test.csv"):
        (tmp_path / name).write_text("path,label\na/1.png,a\n")
    before = BENCHMARKS.run_fingerprint("malaria", "small_cnn", 1, tmp_path)
    assert BENCHMARKS.run_fingerprint("malaria", "small_cnn", 2, tmp_path) != before
    # A recipe added beside it keeps the run's fingerprint (its finished run is reused)...
    monkeypatch.setitem(BENCHMARKS.METHOD_CONFIGS, "another", {"model": {"architecture": "small_cnn"}})
    assert BENCHMARKS.run_fingerprint("malaria", "small_cnn", 1, tmp_path) == before
    # ...a change of its settings or of its manifests does not.
    monkeypatch.setitem(BENCHMARKS.METHOD_CONFIGS, "small_cnn", {"model": {"architecture": "small_cnn"}, "train": {"epochs": 2}})
    changed = BENCHMARKS.run_fingerprint("malaria", "small_cnn", 1, tmp_path)
    assert changed != before
    (tmp_path / "test.csv").write_text("path,label\na/2.png,a\n")
    assert BENCHMARKS.run_fingerprint("malaria", "small_cnn", 1, tmp_path) != changed
