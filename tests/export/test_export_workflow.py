"""The export stage in the pipeline run."""

import json

import pytest


pytestmark = pytest.mark.workflow


def test_the_deployed_model_is_exported_to_tflite_and_described_by_a_model_card(pipeline_run):
    workdir, _, log = pipeline_run
    export = json.loads((workdir / "results/export/export.json").read_text())
    assert set(export["formats"]) == {"float32", "float16", "int8"}
    sizes = {name: (workdir / f"results/export/model_{name}.tflite").stat().st_size for name in export["formats"]}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    for name, entry in export["formats"].items():
        assert entry["bytes"] == sizes[name] and entry["n"] == export["n_test"]
        assert entry["accuracy"] == pytest.approx(entry["keras_accuracy"] + entry["delta"])
        assert entry["latency_ms"]["median"] > 0 and entry["per_group"]
    assert export["formats"]["float32"]["agreement_with_keras"] == 1.0
    assert export["keras"]["agreement_with_evaluation"] == 1.0  # the same predictions as the sealed evaluation
    card = json.loads((workdir / "results/export/model_card.json").read_text())
    assert set(card) >= {"model_details", "intended_use", "data", "metrics", "per_group", "carbon", "export",
                         "limitations"}
    markdown = (workdir / "results/export/model_card.md").read_text()
    assert "Intended use" in markdown and "Limitations" in markdown and "target not met: ece" in markdown
    assert "Operating thresholds of the deployed model" in markdown  # the sensitivity target on 8
