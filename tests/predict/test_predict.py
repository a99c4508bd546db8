"""The predict stage's pure parts: rows, findings, chunks, model files, and the streamed CSV."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core.errors import ConfigError
from imgclf.core.io import csv_appender
from imgclf.predict.predictions import chunk_ranges, input_findings, model_files, predict_markdown, prediction_rows


def images(n: int, labels=None, mode="L", size=(16, 16)) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "label": labels if labels else [pd.NA] * n,
                         "sha256": [f"h{i}" for i in range(n)], "width": size[0], "height": size[1], "mode": mode})


def test_rows_carry_the_class_confidence_and_a_probability_per_class():
    proba = np.array([[0.1, 0.9], [0.7, 0.3]])
    rows = prediction_rows(images(2), proba, ["a", "b"])
    assert list(rows.columns) == ["path", "sha256", "predicted", "confidence", "p_a", "p_b"]
    assert list(rows["predicted"]) == ["b", "a"] and list(rows["confidence"]) == [0.9, 0.7]
    labelled = prediction_rows(images(2, ["b", "b"]), proba, ["a", "b"])
    assert list(labelled.columns[:2]) == ["path", "label"]


def test_images_unlike_the_model_input_are_reported_not_refused():
    table = pd.concat([images(2), images(3, mode="RGB", size=(20, 24))], ignore_index=True)
    findings = {f["code"]: f["message"] for f in input_findings(table, [16, 16], 1)}
    assert findings["other_image_mode"].startswith("3 image(s) are not grayscale (e.g. mode RGB)")
    assert findings["resized"].startswith("3 image(s) are not 16x16 (e.g. 20x24)")
    assert input_findings(images(4), [16, 16], 1) == []
    assert [f["code"] for f in input_findings(images(1), [16, 16], 3)] == ["other_image_mode"]


def test_chunks_cover_every_image_once():
    assert list(chunk_ranges(5, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(chunk_ranges(0, 8)) == [] and list(chunk_ranges(3, 8)) == [(0, 3)]


def test_model_files_follow_predict_model_and_refuse_a_format_not_exported():
    assert model_files("deployed")["model"] == "results/evaluate/deployed/model.keras"
    assert model_files("ensemble")["card"] == "results/evaluate/ensemble/model.json"
    assert model_files("int8", ["float32", "int8"]) == {"model": "results/export/model_int8.tflite",
                                                        "card": "results/evaluate/deployed/model.json"}
    with pytest.raises(ConfigError, match="predict.model is int8, but export.formats \\(float32\\)"):
        model_files("int8", ["float32"])
    with pytest.raises(ConfigError, match="predict.model is 'onnx'"):
        model_files("onnx")


def test_the_streamed_csv_appears_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out" / "predictions.csv"
    with csv_appender(path) as append:
        append(pd.DataFrame({"a": [1, 2]}))
        assert not path.exists()  # only under a temporary name while it is written
        append(pd.DataFrame({"a": [3]}))
    assert path.read_text() == "a\n1\n2\n3\n"
    with pytest.raises(RuntimeError):
        with csv_appender(tmp_path / "failed.csv") as append:
            append(pd.DataFrame({"a": [1]}))
            raise RuntimeError("the job failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_summary_page_has_a_line_per_batch():
    summary = {"batch": "new", "n_images": 3, "model": {"kind": "int8"}, "predicted": {"a": 2, "b": 1, "c": 0},
               "labelled": {"accuracy": 0.5, "n": 2}}
    text = predict_markdown([summary], ["results/predict/new/predictions.csv"])
    assert "| new | 3 | int8 | a 2, b 1 | 0.5000 (n = 2) | results/predict/new/predictions.csv |" in text
