"""make config / python -m imgclf.init: a starting config from the data, valid as written."""

import pandas as pd
import pytest
import yaml
from conftest import make_folder, pattern, save, shared_dataset

from imgclf.core.config import validate_config
from imgclf.init import IMBALANCED, group_column_of, input_size, main


def written(tmp_path, *args):
    output = tmp_path / "out.yaml"
    code = main([*map(str, args), "--output", str(output), "--workers", "1"])
    return code, output


def test_a_balanced_colour_folder_gets_the_transfer_recipe_and_an_accuracy_target(tmp_path, capsys):
    root = make_folder(tmp_path / "cells", {"round": 12, "oval": 12}, size=100)
    code, output = written(tmp_path, root)
    assert code == 0
    text = output.read_text()
    config = validate_config(yaml.safe_load(text))
    assert config["data"]["root"] == str(root) and config["data"]["image_size"] == [96, 96]
    assert config["model"]["architecture"] == "efficientnet_lite0" and config["model"]["weights"] == "imagenet"
    assert config["train"]["sampling"] == "none" and config["split"]["group_column"] is None
    assert config["targets"][0] == {"metric": "accuracy", "min": 0.9}
    assert "oval 12, round 12" in text and "EDIT" in text
    assert f"wrote {output}" in capsys.readouterr().out


def test_imbalance_metadata_groups_and_grayscale_shape_the_config(tmp_path):
    root = tmp_path / "lesions"
    rows = []
    for label, count in (("nv", 48), ("mel", 12)):
        for i in range(count):
            save(pattern(len(rows), 40, "L"), root / label / f"{i}.png")
            rows.append({"file": f"{label}/{i}.png", "lesion_id": f"L{len(rows) // 2}", "age": 40 + i})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    code, output = written(tmp_path, root)
    config = validate_config(yaml.safe_load(output.read_text()))
    assert code == 0 and 48 / 12 > IMBALANCED
    assert config["train"]["sampling"] == "balanced" and config["model"]["architecture"] == "small_cnn"
    assert config["split"]["group_column"] == "lesion_id" and config["data"]["group_columns"] == ["lesion_id"]
    assert config["data"]["metadata"] == str(root / "metadata.csv")
    assert [t["metric"] for t in config["targets"]] == ["balanced_accuracy", "sensitivity", "ece"]
    assert config["targets"][1]["class"] == "mel"  # the smallest class


def test_a_manifest_is_read_with_its_folder_as_root(tmp_path):
    root = make_folder(tmp_path / "imgs", {"a": 12, "b": 12})
    table = pd.DataFrame({"path": [str(p.relative_to(root)) for p in sorted(root.rglob("*.png"))]})
    table["label"] = table["path"].str[0]
    table.to_csv(root / "list.csv", index=False)
    code, output = written(tmp_path, root / "list.csv")
    config = validate_config(yaml.safe_load(output.read_text()))
    assert code == 0 and config["data"]["source"] == "manifest"
    assert config["data"]["manifest"] == str(root / "list.csv") and config["data"]["root"] == str(root)


def test_bad_input_is_named_and_nothing_is_overwritten(tmp_path, capsys):
    code, _ = written(tmp_path, tmp_path / "nowhere")
    assert code == 1 and "nowhere does not exist" in capsys.readouterr().err
    root = make_folder(tmp_path / "one", {"only": 12})
    code, output = written(tmp_path, root)
    assert code == 1 and "only one class" in capsys.readouterr().err and not output.exists()
    two = make_folder(tmp_path / "two", {"a": 12, "b": 12})
    output.write_text("mine")
    code, _ = written(tmp_path, two)
    assert code == 1 and "out.yaml exists" in capsys.readouterr().err and output.read_text() == "mine"
    assert main([str(two), "--output", str(output), "--force", "--workers", "1"]) == 0
    assert output.read_text() != "mine"


def test_group_columns_and_sizes():
    table = pd.DataFrame({"file": ["a", "b", "c"], "patient": [1, 1, 2], "slide_id": [1, 2, 3], "site": [1, 1, 1]})
    assert group_column_of(table, "file") == "patient"  # slide_id never repeats: no group
    assert group_column_of(table[["file", "site"]], "file") is None  # "site" names no group
    assert [input_size(s) for s in (8, 50, 124, 150, 500)] == [32, 64, 128, 128, 128]
    assert [input_size(s, 160) for s in (124, 150, 500)] == [128, 160, 160]


@pytest.mark.shared_data
def test_ham10000_gets_balanced_sampling_grouped_by_lesion(tmp_path):
    code, output = written(tmp_path, shared_dataset("ham10000"))
    config = validate_config(yaml.safe_load(output.read_text()))
    assert code == 0 and config["split"]["group_column"] == "lesion_id"
    assert config["train"]["sampling"] == "balanced" and config["targets"][0]["metric"] == "balanced_accuracy"
    assert config["targets"][1]["class"] == "df"
    # The benchmark's recipe: 160 px (images of 200x150), up to 10 fine-tuning epochs.
    assert config["data"]["image_size"] == [160, 160] and config["train"]["fine_tune"]["epochs"] == 10
