"""The seeded, stratified, group-aware split into fold manifests.

Images that must never straddle two sets are joined into *split units*: the
images of one group (patient, slide, lesion: ``split.group_column``),
byte-identical copies, and near-duplicates (perceptual hash within
``validation.near_duplicate_max_distance``). Units are then dealt, largest
first and in a seeded random order, to the set whose class counts lag their
target the most: a test set, then K validation folds over the rest (or one
validation set when K is 1). The algorithm is ours, not a library's, so the
manifests survive library upgrades; they are written once and every later
stage reads them.

Retraining on appended data keeps the test set sealed (``split.sealed_test``):
the test set is then the images of an earlier test manifest, found by their
SHA-256, and only the other units are dealt, to the folds. Images that share a
unit with a sealed test image without being one of them are left out of every
set: in training they would leak the test set (docs/retraining.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from imgclf.core.errors import ConfigError, SplitError
from imgclf.data import near_duplicate_pairs

MANIFEST_COLUMNS = ["path", "sha256", "label", "group"]


@dataclass(frozen=True)
class SplitOptions:
    """The split part of the config (see config.schema.yaml)."""

    seed: int = 42
    test_fraction: float = 0.2
    n_folds: int = 5
    val_fraction: float = 0.2
    group_column: str | None = None
    near_duplicate_max_distance: int = 2
    #: The sealed test manifest's path (``split.sealed_test``), for messages and the summary.
    sealed_test: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SplitOptions":
        s = config["split"]
        return cls(seed=config["seed"], test_fraction=s["test_fraction"], n_folds=s["n_folds"],
                   val_fraction=s["val_fraction"], group_column=s["group_column"],
                   near_duplicate_max_distance=config["validation"]["near_duplicate_max_distance"],
                   sealed_test=s.get("sealed_test"))


@dataclass
class Split:
    """Fold manifests.

    Attributes:
        test: The test manifest.
        folds: For each fold, its (train, val) manifests.
        summary: Counts per set and class, and the options used.
        warnings: Things worth knowing that do not stop the run.
    """

    test: pd.DataFrame
    folds: list[tuple[pd.DataFrame, pd.DataFrame]]
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _near_pairs(index: pd.DataFrame, max_distance: int) -> np.ndarray:
    if max_distance < 0 or len(index) < 2:
        return np.empty((0, 3), dtype=np.int64)
    hashes = np.array([int(h, 16) for h in index["phash"]], dtype=np.uint64)
    return near_duplicate_pairs(hashes, max_distance)


def split_units(index: pd.DataFrame, options: SplitOptions, near_pairs: np.ndarray) -> np.ndarray:
    """Label each image with its split unit (connected images share a label).

    Args:
        index: The validated index, sorted by path.
        options: Which group column joins images.
        near_pairs: Near-duplicate pairs (row indices) from :func:`near_duplicate_pairs`.

    Returns:
        One integer unit label per row.
    """
    n = len(index)
    rows: list[np.ndarray] = [near_pairs[:, 0]] if len(near_pairs) else []
    cols: list[np.ndarray] = [near_pairs[:, 1]] if len(near_pairs) else []
    keys = [index["sha256"]]
    if options.group_column:
        keys.append(index[options.group_column])
    for key in keys:
        codes, _ = pd.factorize(key)
        first = pd.Series(np.arange(n)).groupby(codes).transform("min").to_numpy()
        rows.append(np.arange(n))
        cols.append(first)
    r = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def assign_units(labels: np.ndarray, units: np.ndarray, fractions: list[float], seed: int) -> np.ndarray:
    """Deal split units to bins so that every bin gets its fraction of every class.

    Args:
        labels: Class code per image.
        units: Split unit per image.
        fractions: Target share of each bin (summing to 1).
        seed: Seed of the order in which equal-sized units are dealt.

    Returns:
        The bin of each image.
    """
    n_units = int(units.max()) + 1
    n_classes = int(labels.max()) + 1
    counts = np.zeros((n_units, n_classes), dtype=np.int64)
    np.add.at(counts, (units, labels), 1)
    targets = np.outer(fractions, counts.sum(axis=0)).astype(float)
    current = np.zeros_like(targets)
    sizes = counts.sum(axis=1)
    order = np.random.default_rng(seed).permutation(n_units)
    order = order[np.argsort(-sizes[order], kind="stable")]
    unit_bin = np.empty(n_units, dtype=np.int64)
    safe = np.where(targets > 0, targets, np.inf)
    for unit in order:
        relative = ((targets - current) / safe) @ counts[unit]
        absolute = (targets - current) @ counts[unit]
        # Bins whose target is zero for all of this unit's classes never win.
        relative[(targets @ (counts[unit] > 0)) == 0] = -np.inf
        # Most relative need first; on ties, most absolute need (the bigger bin).
        chosen = int(np.lexsort((-np.arange(len(fractions)), absolute, relative))[-1])
        unit_bin[unit] = chosen
        current[chosen] += counts[unit]
    return unit_bin[units]


def _unit_names(index: pd.DataFrame, units: np.ndarray, group_column: str | None) -> np.ndarray:
    """A readable, stable name per unit: its first member's group value, or path."""
    source = index[group_column].astype(str) if group_column else index["path"]
    first = pd.Series(np.arange(len(index))).groupby(units).transform("min").to_numpy()
    return source.to_numpy()[first]


def _keep_sealed_counts(index: pd.DataFrame, sealed: pd.DataFrame, is_test: np.ndarray) -> None:
    """Test each sealed image as many times as the sealed manifest lists it (in place).

    A byte copy of a sealed image added with a batch has its sha256: it would enter the
    test set twice. The copy whose path matches the sealed path (or ends with it: the data
    root may have moved) stays, then the first in path order; the others join the images
    left out (they share the sealed image's split unit).
    """
    wanted = sealed["sha256"].value_counts()
    found = index.loc[is_test].groupby("sha256").size()
    for sha in found.index[found.to_numpy() > wanted.reindex(found.index).to_numpy()]:
        rows = index.loc[is_test & (index["sha256"] == sha).to_numpy(), "path"]
        sealed_paths = set(sealed.loc[sealed["sha256"] == sha, "path"]) if "path" in sealed.columns else set()
        matches = {i: any(p == s or p.endswith("/" + s) for s in sealed_paths) for i, p in rows.items()}
        order = sorted(rows.index, key=lambda i: (not matches[i], rows[i]))
        is_test[order[int(wanted[sha]):]] = False


def _sealed_bins(index: pd.DataFrame, units: np.ndarray, labels: np.ndarray, class_names: list[str],
                 options: SplitOptions, sealed_test: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Bins with a sealed test set: 0 the sealed images, -1 the images left out, 1.. the folds.

    Returns:
        The bin of each image, and the paths left out (sorted).
    """
    name = options.sealed_test or "the sealed test manifest"
    what = (f"split.sealed_test ({name}) must list the images that stay the test set, "
            "with their sha256 and label (a copy of an earlier run's test manifest)")
    absent_columns = [c for c in ("sha256", "label") if c not in sealed_test.columns]
    if absent_columns:
        raise SplitError(f"{name} has no column(s) {', '.join(map(repr, absent_columns))} "
                         f"(columns: {', '.join(map(str, sealed_test.columns))})", what)
    if sealed_test.empty:
        raise SplitError(f"{name} lists no image", what)
    sealed = sealed_test.astype({"sha256": str, "label": str})
    conflicting = sealed.groupby("sha256")["label"].nunique()
    if (conflicting > 1).any():
        raise SplitError(f"{name} gives {int((conflicting > 1).sum())} image(s) two labels, "
                         f"e.g. sha256 {conflicting[conflicting > 1].index[0]}", what)
    sealed_label = sealed.drop_duplicates("sha256").set_index("sha256")["label"]
    missing = sorted(set(sealed_label.index) - set(index["sha256"]))
    if missing:
        examples = sealed.loc[sealed["sha256"].isin(missing[:3])]
        shown = ", ".join(f"{r.get('path', '?')} ({r['sha256'][:12]}…)" for _, r in examples.iterrows())
        raise SplitError(
            f"{len(missing)} of the {len(sealed_label)} sealed test image(s) of {name} are not in the "
            f"data (matched by sha256), e.g. {shown}",
            "the sealed test set must stay whole: restore these images (or their source) in the data, "
            "check that validation did not drop them (results/data/validation.md); or, if a new test "
            "set is wanted, set split.sealed_test: null and evaluation.unseal_reason")
    is_test = index["sha256"].isin(sealed_label.index).to_numpy().copy()
    expected = index["sha256"].map(sealed_label)
    _keep_sealed_counts(index, sealed, is_test)
    wrong = is_test & (expected.to_numpy() != index["label"].to_numpy())
    if wrong.any():
        first = np.flatnonzero(wrong)[0]
        raise SplitError(
            f"{int(wrong.sum())} sealed test image(s) now have another label than in {name}, e.g. "
            f"{index['path'][first]}: {expected[first]!r} in the sealed manifest, "
            f"{index['label'][first]!r} in the data",
            "a relabelled test set is a new test set: fix the labels of the data, or set "
            "split.sealed_test: null and evaluation.unseal_reason to draw a new one")
    new_classes = sorted(set(class_names) - set(sealed_label))
    if new_classes:
        raise SplitError(
            f"class(es) {', '.join(map(repr, new_classes))} have no image in the sealed test set {name}: "
            "a new class needs a new test set (the sealed one cannot measure it)",
            "set split.sealed_test: null to draw a new test set, and evaluation.unseal_reason to a "
            "sentence saying why (the old test results no longer compare)")
    test_units = np.unique(units[is_test])
    dropped = np.isin(units, test_units) & ~is_test
    rest = ~is_test & ~dropped
    bins = np.where(is_test, 0, -1)
    if rest.any():
        if options.n_folds == 1:
            fractions = [options.val_fraction, 1 - options.val_fraction]
        else:
            fractions = [1 / options.n_folds] * options.n_folds
        _, compact = np.unique(units[rest], return_inverse=True)
        bins[rest] = assign_units(labels[rest], compact, fractions, options.seed) + 1
    return bins, sorted(index.loc[dropped, "path"])


def make_split(index: pd.DataFrame, options: SplitOptions, sealed_test: pd.DataFrame | None = None) -> Split:
    """Split the index into a test set and K train/validation folds.

    Args:
        index: The validated index (``index.csv``).
        options: Seed, fractions, folds and group column.
        sealed_test: An earlier test manifest (``split.sealed_test``) whose images,
            matched by sha256, are the test set; None draws the test set.

    Returns:
        The manifests (rows sorted by path) and a summary.

    Raises:
        SplitError: If the group column is missing or empty, a class cannot
            reach the test set, the leak check fails, or (with a sealed test
            set) a sealed image is missing or relabelled, or a class is new.
    """
    index = index.sort_values("path", kind="stable").reset_index(drop=True)
    if options.group_column:
        if options.group_column not in index.columns:
            raise SplitError(
                f"split.group_column {options.group_column!r} is not a column of the index "
                f"(columns: {', '.join(index.columns)})",
                "name a column of the metadata (or manifest) and list it in data.group_columns")
        missing = index[options.group_column].isna()
        if missing.any():
            raise SplitError(
                f"{int(missing.sum())} image(s) have no value in split.group_column "
                f"{options.group_column!r}, e.g. {index.loc[missing, 'path'].iloc[0]}",
                "fill in the group of every image; the split cannot keep unknown groups apart")
    near = _near_pairs(index, options.near_duplicate_max_distance)
    units = split_units(index, options, near)
    class_names = sorted(index["label"].unique())
    labels = index["label"].map({c: i for i, c in enumerate(class_names)}).to_numpy()
    dropped: list[str] = []
    if sealed_test is not None:
        bins, dropped = _sealed_bins(index, units, labels, class_names, options, sealed_test)
    else:
        rest = 1.0 - options.test_fraction
        if options.n_folds == 1:
            fractions = [options.test_fraction, rest * options.val_fraction, rest * (1 - options.val_fraction)]
        else:
            fractions = [options.test_fraction] + [rest / options.n_folds] * options.n_folds
        bins = assign_units(labels, units, fractions, options.seed)

    manifest = index[["path", "sha256", "label"]].copy()
    manifest["group"] = _unit_names(index, units, options.group_column)
    test = manifest[bins == 0].reset_index(drop=True)
    folds: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    if options.n_folds == 1:
        folds.append((manifest[bins == 2].reset_index(drop=True),
                      manifest[bins == 1].reset_index(drop=True)))
    else:
        for k in range(options.n_folds):
            # bins > 0: the test set (0) and the images left out (-1, sealed test only) never train.
            folds.append((manifest[(bins > 0) & (bins != k + 1)].reset_index(drop=True),
                          manifest[bins == k + 1].reset_index(drop=True)))

    n_units = int(units.max()) + 1 if len(units) else 0
    units_per_class = pd.Series(units).groupby(index["label"].to_numpy()).nunique()
    why = (f"the {len(index)} images form {n_units} split units (a unit joins images that must stay "
           "together: one group of split.group_column, byte-identical copies, near-duplicates)")
    fix = ("add images (or groups), lower split.test_fraction or split.n_folds, or lower "
           "validation.near_duplicate_max_distance if near-duplicates join too much; "
           f"every class needs at least {options.n_folds + 2 if options.n_folds > 1 else 3} units "
           "(test, validation, training)")
    missing_in_test = sorted(set(class_names) - set(test["label"]))
    if missing_in_test and sealed_test is None:
        raise SplitError(
            f"class(es) {', '.join(map(repr, missing_in_test))} have no image in the test set "
            f"(split.test_fraction = {options.test_fraction}); {why}; units per class: "
            + ", ".join(f"{c}: {units_per_class[c]}" for c in missing_in_test), fix)
    warnings: list[str] = []
    for k, (train, val) in enumerate(folds):
        absent = sorted(set(class_names) - set(train["label"]))
        if absent:
            raise SplitError(
                f"fold {k}: class(es) {', '.join(map(repr, absent))} have no training image "
                f"(their units all fell in the test or validation set); {why}; units per class: "
                + ", ".join(f"{c}: {units_per_class[c]}" for c in absent), fix)
        absent = sorted(set(class_names) - set(val["label"]))
        if absent:
            warnings.append(f"fold {k}: class(es) {', '.join(absent)} have no validation image")
    empty = [k for k, (train, val) in enumerate(folds) if val.empty or train.empty]
    if empty:
        raise SplitError(
            f"split.n_folds = {options.n_folds} leaves {len(empty)} fold(s) (e.g. fold {empty[0]}) with an "
            f"empty training or validation set; {why}", fix)
    achieved = len(test) / len(index)
    if dropped:
        warnings.append(
            f"{len(dropped)} image(s) share a group, a copy or a near-duplicate with a sealed test image "
            f"without being one of them: left out of every fold (in training they would leak the test set), "
            f"e.g. {', '.join(dropped[:3])}")
    # A sealed test set is what it is: split.test_fraction does not apply (the summary gives the share).
    if sealed_test is None and abs(achieved - options.test_fraction) > 0.1:
        raise SplitError(
            f"split.test_fraction = {options.test_fraction} but the test set holds {achieved:.0%} of the "
            f"images; {why}", "choose a fraction the data can reach, or split into smaller groups")
    if sealed_test is None and abs(achieved - options.test_fraction) > 0.03:
        warnings.append(f"the test set holds {achieved:.1%} of the images, not "
                        f"{options.test_fraction:.0%}: the split units are coarse")
    leaks = find_leaks(test, folds, index, options.group_column, near)
    if leaks:
        raise SplitError("the leak check failed:\n  " + "\n  ".join(leaks[:20]),
                         "report this as a bug: the split must never leak")
    summary = {
        "options": {"seed": options.seed, "test_fraction": options.test_fraction,
                    "n_folds": options.n_folds, "val_fraction": options.val_fraction,
                    "group_column": options.group_column,
                    "near_duplicate_max_distance": options.near_duplicate_max_distance},
        "n_images": int(len(index)),
        "n_split_units": n_units,
        "test_fraction_achieved": round(achieved, 4),
        "n_near_duplicate_pairs": int(len(near)),
        "classes": class_names,
        "test": _counts(test, class_names),
        "folds": [{"train": _counts(tr, class_names), "val": _counts(va, class_names)}
                  for tr, va in folds],
        "leak_check": "passed",
        "warnings": warnings,
    }
    if sealed_test is not None:
        # Only with a sealed test set: a drawn split's summary stays as it was, byte for byte.
        summary["sealed_test"] = {"manifest": options.sealed_test, "n": int(len(test)),
                                  "n_dropped": len(dropped), "dropped": dropped}
    return Split(test, folds, summary, warnings)


def _counts(table: pd.DataFrame, class_names: list[str]) -> dict[str, int]:
    counts = table["label"].value_counts()
    return {"total": int(len(table)), **{c: int(counts.get(c, 0)) for c in class_names}}


def find_leaks(
    test: pd.DataFrame,
    folds: list[tuple[pd.DataFrame, pd.DataFrame]],
    index: pd.DataFrame,
    group_column: str | None,
    near_pairs: np.ndarray,
) -> list[str]:
    """Check that no image, group or near-duplicate is shared between sets.

    Checked, for every fold: test vs train, test vs val, train vs val. Shared
    means the same sha256, the same split unit (``group``), the same value of
    the configured group column, or a near-duplicate pair across the sets.

    Returns:
        One line per leak found (empty when the split is clean).
    """
    index = index.sort_values("path", kind="stable").reset_index(drop=True)
    position = pd.Series(np.arange(len(index)), index=index["path"])
    leaks: list[str] = []
    for k, (train, val) in enumerate(folds):
        sets = {"test": test, "train": train, "val": val}
        for a, b in (("test", "train"), ("test", "val"), ("train", "val")):
            left, right = sets[a], sets[b]
            for column in ("path", "sha256", "group"):
                shared = set(left[column]) & set(right[column])
                if shared:
                    leaks.append(f"fold {k}: {len(shared)} {column}(s) in both {a} and {b}, "
                                 f"e.g. {sorted(shared)[0]}")
            if group_column:
                groups_left = set(index.loc[position[left["path"]].to_numpy(), group_column])
                groups_right = set(index.loc[position[right["path"]].to_numpy(), group_column])
                shared = groups_left & groups_right
                if shared:
                    leaks.append(f"fold {k}: {len(shared)} {group_column} value(s) in both {a} "
                                 f"and {b}, e.g. {sorted(map(str, shared))[0]}")
            if len(near_pairs):
                member = np.zeros(len(index), dtype=np.int8)
                member[position[left["path"]].to_numpy()] = 1
                member[position[right["path"]].to_numpy()] = 2
                i, j = near_pairs[:, 0], near_pairs[:, 1]
                crossing = (member[i] * member[j]) == 2
                if crossing.any():
                    p, q = near_pairs[crossing][0, :2]
                    leaks.append(f"fold {k}: {int(crossing.sum())} near-duplicate pair(s) across "
                                 f"{a} and {b}, e.g. {index['path'][p]} ~ {index['path'][q]}")
    return leaks


def index_near_pairs(index: pd.DataFrame, options: SplitOptions) -> np.ndarray:
    """The near-duplicate pairs the leak check uses, for re-checking saved manifests."""
    return _near_pairs(index.sort_values("path", kind="stable").reset_index(drop=True),
                       options.near_duplicate_max_distance)


def check_sealed_test(config: dict[str, Any], written: str) -> None:
    """Load-time check of ``split.sealed_test``: an existing file, not the manifest the split writes.

    Args:
        config: The validated config.
        written: The test manifest the split rule writes.

    Raises:
        ConfigError: Naming the key and the path.
    """
    sealed = config["split"].get("sealed_test")
    if not sealed:
        return
    sealed = os.path.expanduser(sealed)
    if os.path.normpath(os.path.abspath(sealed)) == os.path.normpath(os.path.abspath(written)):
        raise ConfigError("split.sealed_test names the test manifest the split writes itself",
                          "seal a copy kept outside results/ (python -m imgclf.retrain writes one)")
    if not os.path.isfile(sealed):
        raise ConfigError(
            f"split.sealed_test is {sealed!r}, which is not an existing file (relative paths are taken "
            f"from the working directory {os.getcwd()})",
            "point it at the copy of the earlier run's test manifest (docs/retraining.md), or set it to null")


def sealed_test_input(config: dict[str, Any]) -> dict[str, str]:
    """The split rule's ``sealed_test`` input when ``split.sealed_test`` is set, else nothing."""
    sealed = config["split"].get("sealed_test")
    return {"sealed_test": os.path.expanduser(sealed)} if sealed else {}
