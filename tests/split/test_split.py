"""The split: stratified, group-aware, seeded, reproducible, leak-checked."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core.errors import SplitError
from imgclf.core.io import csv_text
from imgclf.split.folds import SplitOptions, assign_units, find_leaks, index_near_pairs, make_split


def make_index(counts, groups_per_class=None, seed=0):
    """A synthetic index: distinct hashes, optional patient groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in counts.items():
        for i in range(n):
            rows.append({"path": f"{label}/{i:04d}.png", "sha256": f"{label}{i:060d}",
                         "label": label, "phash": f"{int(rng.integers(0, 2**63)):016x}",
                         "patient": f"{label}-P{i // groups_per_class}" if groups_per_class else None})
    return pd.DataFrame(rows)


def test_split_is_stratified_and_covers_every_image_once():
    index = make_index({"a": 100, "b": 50, "c": 30})
    split = make_split(index, SplitOptions(seed=1, test_fraction=0.2, n_folds=5))
    assert split.summary["test"] == {"total": 36, "a": 20, "b": 10, "c": 6}
    vals = [val for _, val in split.folds]
    assert sorted(pd.concat([split.test, *vals])["path"]) == sorted(index["path"])
    for k, (train, val) in enumerate(split.folds):
        assert len(train) + len(val) + len(split.test) == len(index)
        assert set(train["path"]).isdisjoint(val["path"])
        counts = val["label"].value_counts()
        assert abs(counts["a"] - 16) <= 1 and abs(counts["c"] - 4.8) <= 1


def test_same_seed_same_bytes_and_other_seed_other_manifests():
    index = make_index({"a": 60, "b": 60})
    first = make_split(index, SplitOptions(seed=3))
    second = make_split(index.sample(frac=1, random_state=9), SplitOptions(seed=3))  # row order ignored
    assert csv_text(first.test) == csv_text(second.test)
    for (t1, v1), (t2, v2) in zip(first.folds, second.folds):
        assert csv_text(t1) == csv_text(t2) and csv_text(v1) == csv_text(v2)
    other = make_split(index, SplitOptions(seed=4))
    assert csv_text(other.test) != csv_text(first.test)
    assert csv_text(make_split(index, SplitOptions(seed=3, test_fraction=0.3)).test) != csv_text(first.test)


def test_groups_never_straddle_sets():
    index = make_index({"a": 90, "b": 60}, groups_per_class=3)
    split = make_split(index, SplitOptions(seed=0, n_folds=3, group_column="patient"))
    patient = index.set_index("path")["patient"]
    test_patients = set(patient[split.test["path"]])
    for train, val in split.folds:
        train_p, val_p = set(patient[train["path"]]), set(patient[val["path"]])
        assert not (train_p & val_p) and not (test_patients & train_p) and not (test_patients & val_p)
    assert split.test["group"].isin(index["patient"]).all()
    assert 0.15 <= len(split.test) / len(index) <= 0.25


def test_exact_and_near_duplicates_stay_together():
    index = make_index({"a": 40, "b": 40})
    index.loc[1, "sha256"] = index.loc[0, "sha256"]  # byte-identical copy
    h = int(index.loc[2, "phash"], 16)
    index.loc[3, "phash"] = f"{h ^ 0b11:016x}"  # two bits away: a near-duplicate
    for seed in range(5):
        split = make_split(index, SplitOptions(seed=seed, near_duplicate_max_distance=2))
        for train, val in split.folds:
            where = {p: name for name, t in (("test", split.test), ("train", train), ("val", val))
                     for p in t["path"]}
            assert where["a/0000.png"] == where["a/0001.png"]
            assert where["a/0002.png"] == where["a/0003.png"]


def test_single_fold_uses_val_fraction():
    index = make_index({"a": 100, "b": 100})
    split = make_split(index, SplitOptions(n_folds=1, test_fraction=0.2, val_fraction=0.25))
    (train, val), = split.folds
    assert (len(split.test), len(val), len(train)) == (40, 40, 120)


def test_leak_check_catches_each_kind_of_leak():
    index = make_index({"a": 20, "b": 20}, groups_per_class=2)
    split = make_split(index, SplitOptions(seed=0, n_folds=2, group_column="patient"))
    near = index_near_pairs(index, SplitOptions(near_duplicate_max_distance=2))
    assert find_leaks(split.test, split.folds, index, "patient", near) == []
    train, val = split.folds[0]
    leaked = pd.concat([val, split.test.iloc[:1]])  # a test image also in validation
    leaks = find_leaks(split.test, [(train, leaked)], index, "patient", near)
    assert any("path(s) in both test and val" in leak for leak in leaks)
    # A patient split across train and val.
    moved = train[train["group"] == train["group"].iloc[0]].iloc[:1]
    leaks = find_leaks(split.test, [(train.drop(moved.index), pd.concat([val, moved]))], index,
                       "patient", near)
    assert any("patient value(s) in both train and val" in leak for leak in leaks)
    # A near-duplicate pair across test and train.
    edited = index.copy()
    edited.loc[edited["path"] == train["path"].iloc[0], "phash"] = index.set_index("path").loc[
        split.test["path"].iloc[0], "phash"]
    pairs = index_near_pairs(edited, SplitOptions(near_duplicate_max_distance=0))
    leaks = find_leaks(split.test, [(train, val)], edited, None, pairs)
    assert any("near-duplicate pair(s) across test and train" in leak for leak in leaks)


def test_missing_group_values_and_unknown_group_column_are_errors():
    index = make_index({"a": 20, "b": 20}, groups_per_class=2)
    index.loc[0, "patient"] = None
    with pytest.raises(SplitError, match="no value in split.group_column 'patient'"):
        make_split(index, SplitOptions(group_column="patient"))
    with pytest.raises(SplitError, match="'site' is not a column"):
        make_split(index, SplitOptions(group_column="site"))


def test_class_that_cannot_reach_every_set_is_an_error():
    # One group holds every image of class b: it can sit in only one set.
    index = make_index({"a": 50, "b": 10}, groups_per_class=1)
    index.loc[index["label"] == "b", "patient"] = "same"
    with pytest.raises(SplitError, match="class\\(es\\) 'b' have no (training image|image in the test set)"):
        make_split(index, SplitOptions(seed=0, group_column="patient"))


def test_assign_units_respects_fractions_for_singletons():
    labels = np.repeat([0, 1], [300, 100])
    bins = assign_units(labels, np.arange(400), [0.1, 0.3, 0.6], seed=0)
    assert np.bincount(bins[labels == 0]).tolist() == [30, 90, 180]
    assert np.bincount(bins[labels == 1]).tolist() == [10, 30, 60]


def test_too_many_folds_is_an_error_naming_n_folds():
    index = make_index({"a": 12, "b": 12})
    with pytest.raises(SplitError, match=r"split.n_folds = 20 leaves \d+ fold\(s\)") as error:
        make_split(index, SplitOptions(n_folds=20))
    assert "split units" in str(error.value)


def test_unreachable_test_fraction_is_an_error():
    index = make_index({"a": 12, "b": 12})
    with pytest.raises(SplitError, match="split.test_fraction = 0.99"):
        make_split(index, SplitOptions(test_fraction=0.99, n_folds=2))


def test_group_ids_keep_their_leading_zeros(tmp_path):
    from imgclf.core.io import read_index, write_csv
    index = make_index({"a": 20, "b": 20}, groups_per_class=2)
    index["patient"] = [f"{i // 2:03d}" for i in range(len(index))]  # 000, 000, 001...
    write_csv(tmp_path / "index.csv", index)
    reread = read_index(tmp_path / "index.csv")
    assert reread["patient"].iloc[0] == "000"
    split = make_split(reread, SplitOptions(group_column="patient", n_folds=2))
    assert split.test["group"].str.len().eq(3).all()


def test_atomic_writes_leave_shareable_files_and_no_temporary(tmp_path):
    """Results are written through a rename, with the usual permissions (not mkstemp's 0600)."""
    import os
    import stat

    from imgclf.core.io import atomic_write_text

    target = tmp_path / "out" / "report.html"
    atomic_write_text(target, "<html></html>")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


# --- A sealed test set (split.sealed_test): retraining on appended data -------------------------


def sealed_split(seed=0, **options):
    """An index split once, its test manifest, and the index with a new batch appended."""
    old = make_index({"a": 40, "b": 40}, seed=seed)
    first = make_split(old, SplitOptions(seed=seed, n_folds=3, **options))
    batch = make_index({"a": 10, "b": 10}, seed=seed + 100)
    batch["path"] = "new/" + batch["path"]
    batch["sha256"] = "new" + batch["sha256"]
    return old, first, batch


def test_sealed_test_keeps_the_test_images_and_deals_only_new_units_to_the_folds():
    old, first, batch = sealed_split()
    # New data root: the old images have moved (other paths), the sha256 are the same.
    moved = old.assign(path="old/" + old["path"])
    index = pd.concat([moved, batch], ignore_index=True)
    split = make_split(index, SplitOptions(seed=0, n_folds=3, sealed_test="sealed.csv"), first.test)
    assert sorted(split.test["sha256"]) == sorted(first.test["sha256"])
    assert split.test["path"].str.startswith("old/").all()
    vals = pd.concat([val for _, val in split.folds])
    assert sorted(vals["path"]) == sorted(set(index["path"]) - set(split.test["path"]))
    assert set(batch["path"]) <= set(vals["path"])
    for train, val in split.folds:
        assert set(batch["path"]) <= set(train["path"]) | set(val["path"])
    summary = split.summary
    assert summary["sealed_test"] == {"manifest": "sealed.csv", "n": len(first.test), "n_dropped": 0, "dropped": []}
    assert summary["test_fraction_achieved"] == round(len(first.test) / len(index), 4)
    assert summary["leak_check"] == "passed"
    # Seeded: the same inputs give the same bytes.
    again = make_split(index.sample(frac=1, random_state=1), SplitOptions(seed=0, n_folds=3), first.test)
    assert [csv_text(v) for _, v in again.folds] == [csv_text(v) for _, v in split.folds]


def test_a_new_image_joined_to_a_sealed_test_image_is_left_out_of_every_fold():
    old = make_index({"a": 40, "b": 40}, groups_per_class=2)
    first = make_split(old, SplitOptions(seed=0, n_folds=2, group_column="patient"))
    test_row = first.test.iloc[0]
    patient = old.set_index("path").loc[test_row["path"], "patient"]
    label = test_row["label"]
    extra = pd.DataFrame([
        # Same patient as a sealed test image.
        {"path": "new/same_patient.png", "sha256": "x1", "label": label, "phash": "0" * 16, "patient": patient},
        # A near-duplicate of a sealed test image (1 bit away), another patient.
        {"path": "new/near.png", "sha256": "x2", "label": label, "patient": "Z-new",
         "phash": f"{int(old.set_index('path').loc[first.test['path'].iloc[-1], 'phash'], 16) ^ 1:016x}"},
        # A byte copy of a sealed test image under another name.
        {"path": "new/copy.png", "sha256": test_row["sha256"], "label": label, "phash": "f" * 16,
         "patient": "Z-copy"},
        # Unrelated.
        {"path": "new/fresh.png", "sha256": "x4", "label": label, "phash": "0123456789abcdef",
         "patient": "Z-fresh"},
    ])
    index = pd.concat([old, extra], ignore_index=True)
    split = make_split(index, SplitOptions(seed=0, n_folds=2, group_column="patient"), first.test)
    # The test set is the sealed one, image for image: the byte copy is not tested twice.
    assert sorted(split.test["path"]) == sorted(first.test["path"])
    assert sorted(split.test["sha256"]) == sorted(first.test["sha256"])
    dropped = split.summary["sealed_test"]["dropped"]
    assert {"new/same_patient.png", "new/near.png", "new/copy.png"} <= set(dropped)
    assert "new/fresh.png" not in dropped
    everywhere = set(split.test["path"]).union(*(set(t["path"]) | set(v["path"]) for t, v in split.folds))
    assert not set(dropped) & everywhere
    assert any("left out of every fold" in w for w in split.warnings)


def test_missing_or_relabelled_sealed_images_and_new_classes_are_errors():
    old, first, _ = sealed_split()
    options = SplitOptions(seed=0, n_folds=3, sealed_test="data/retrain/b1/sealed_test.csv")
    gone = old[old["path"] != first.test["path"].iloc[0]]
    with pytest.raises(SplitError, match=r"1 of the \d+ sealed test image\(s\) of data/retrain/b1/sealed_test.csv "
                                         r"are not in the data") as error:
        make_split(gone, options, first.test)
    assert first.test["path"].iloc[0] in str(error.value) and "What to do" in str(error.value)
    relabelled = old.copy()
    relabelled.loc[relabelled["path"] == first.test["path"].iloc[0], "label"] = "b" if first.test["label"].iloc[0] == "a" else "a"
    with pytest.raises(SplitError, match="another label than in"):
        make_split(relabelled, options, first.test)
    new_class = pd.concat([old, make_index({"c": 12}, seed=7)], ignore_index=True)
    with pytest.raises(SplitError, match="class\\(es\\) 'c' have no image in the sealed test set") as error:
        make_split(new_class, options, first.test)
    assert "split.sealed_test: null" in str(error.value) and "unseal_reason" in str(error.value)
    with pytest.raises(SplitError, match="no column\\(s\\) 'sha256'"):
        make_split(old, options, first.test.drop(columns="sha256"))


def test_without_a_sealed_test_the_split_is_byte_identical_to_before():
    index = make_index({"a": 60, "b": 45, "c": 30}, groups_per_class=3)
    for options in (SplitOptions(seed=5, n_folds=4, group_column="patient"), SplitOptions(seed=1, n_folds=1)):
        plain = make_split(index, options)
        explicit = make_split(index, options, None)
        assert csv_text(plain.test) == csv_text(explicit.test)
        assert [csv_text(t) + csv_text(v) for t, v in plain.folds] == [csv_text(t) + csv_text(v)
                                                                      for t, v in explicit.folds]
        assert "sealed_test" not in plain.summary
    # The manifests of a known case, pinned from the code before split.sealed_test existed:
    # a change of the dealing algorithm shows here.
    import hashlib
    split = make_split(make_index({"a": 10, "b": 10}), SplitOptions(seed=3, n_folds=2))
    text = csv_text(split.test) + "".join(csv_text(t) + csv_text(v) for t, v in split.folds)
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "82ca4514a6f499238328cdd7e97f0267e62890c4e543137edd877b5024d3a176")


def test_sealed_test_with_a_single_fold_uses_val_fraction():
    old, first, batch = sealed_split()
    index = pd.concat([old, batch], ignore_index=True)
    split = make_split(index, SplitOptions(seed=0, n_folds=1, val_fraction=0.25), first.test)
    (train, val), = split.folds
    rest = len(index) - len(split.test)
    assert abs(len(val) - rest * 0.25) <= 2 and len(train) + len(val) == rest
    assert set(batch["path"]) <= set(train["path"]) | set(val["path"])


def test_the_split_job_returns_the_manifests_and_the_summary_last(tmp_path):
    import logging

    from imgclf.core.config import validate_config
    from imgclf.core.io import read_index, sha256_file, write_csv
    from imgclf.split import split_data

    index = tmp_path / "index.csv"
    write_csv(index, make_index({"a": 30, "b": 30}))
    config = validate_config({"split": {"n_folds": 2}})
    result = split_data(config, index, None, logging.getLogger("test.split"))
    assert list(result) == ["test", "train", "val", "summary"]  # written in this order: the summary marks the end
    assert len(result["train"]) == len(result["val"]) == 2
    assert result["summary"]["index_sha256"] == sha256_file(index)
    assert csv_text(result["test"]) == csv_text(make_split(read_index(index), SplitOptions.from_config(config)).test)
    sealed = tmp_path / "sealed.csv"
    write_csv(sealed, result["test"])
    again = split_data(config, index, sealed, logging.getLogger("test.split"))
    assert csv_text(again["test"]) == csv_text(result["test"])
    assert again["summary"]["sealed_test"]["manifest_sha256"] == sha256_file(sealed)
