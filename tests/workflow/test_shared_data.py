"""Real image sets from ../shared/data (skipped where they are absent)."""

import pytest

from conftest import shared_dataset
from imgclf.core.config import validate_config
from imgclf.data.index import validate_source
from imgclf.split.folds import SplitOptions, make_split

pytestmark = pytest.mark.shared_data


def test_malaria_split_keeps_every_slide_in_one_set():
    root = shared_dataset("malaria")
    config = validate_config({
        "data": {"source": "folder", "root": str(root), "metadata": str(root / "metadata.csv"),
                 "group_columns": ["slide_id"], "image_size": [64, 64]},
        "split": {"group_column": "slide_id", "n_folds": 3}})
    result = validate_source(config, root, metadata=root / "metadata.csv", workers=2)
    assert not result.errors, [f.message for f in result.errors]
    assert result.summary["classes"] == {"Parasitized": 1170, "Uninfected": 1238}
    split = make_split(result.index, SplitOptions.from_config(config))
    slide = result.index.set_index("path")["slide_id"]
    test_slides = set(slide[split.test["path"]])
    for train, val in split.folds:
        assert not test_slides & set(slide[train["path"]])
        assert not set(slide[val["path"]]) & set(slide[train["path"]])
    assert 0.12 <= len(split.test) / len(result.index) <= 0.28


def test_ham10000_validation_sees_imbalance_and_groups_by_lesion():
    root = shared_dataset("ham10000")
    config = validate_config({
        "data": {"source": "folder", "root": str(root), "metadata": str(root / "metadata.csv"),
                 "group_columns": ["lesion_id", "age", "sex", "localization"],
                 "image_size": [128, 128]},
        "split": {"group_column": "lesion_id"}})
    result = validate_source(config, root, metadata=root / "metadata.csv", workers=2)
    assert not result.errors
    codes = {f.code for f in result.findings}
    assert "class_imbalance" in codes  # nv 4058 vs df 63
    assert "metadata_missing_value" in codes  # 35 images have no age
    split = make_split(result.index, SplitOptions.from_config(config))
    assert split.summary["leak_check"] == "passed"
    assert set(split.test["label"]) == set(result.summary["classes"])


def test_ham10000_data_audit_measures_group_and_label_association():
    """Real metadata: localization and age relate to the diagnosis on HAM10000; sex barely."""
    from imgclf.audit.groups import audit_data

    root = shared_dataset("ham10000")
    config = validate_config({
        "data": {"source": "folder", "root": str(root), "metadata": str(root / "metadata.csv"),
                 "group_columns": ["lesion_id", "age", "sex", "localization"], "image_size": [128, 128]},
        "split": {"group_column": "lesion_id", "n_folds": 2},
        "audit": {"group_columns": ["age", "sex", "localization"], "numeric_bins": {"age": [0, 30, 50, 70, 90]}}})
    result = validate_source(config, root, metadata=root / "metadata.csv", workers=2)
    split = make_split(result.index, SplitOptions.from_config(config))
    train, val = split.folds[0]
    audit = audit_data(result.index, {"train": train, "val": val, "test": split.test[["path"]]}, config)
    v = {column: entry["association"]["cramers_v"] for column, entry in audit["columns"].items()}
    assert set(v) >= {"age", "sex", "localization", "image:brightness", "image:aspect_ratio"}
    assert v["sex"] < 0.15 < v["localization"] and v["age"] > 0.15
    age_groups = {row["group"] for row in audit["columns"]["age"]["representation"]}
    assert age_groups == {"[0, 30)", "[30, 50)", "[50, 70)", "[70, 90]", "(missing)"}
    assert all(f["severity"] == "warning" for f in audit["findings"])
