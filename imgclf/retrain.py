"""Retraining on a labelled batch: new manifests, the old test set kept sealed.

``python -m imgclf.retrain --batch PATH --name NAME [--mode add|favour]`` is the
step between a drift report's recommendation (docs/practices.md section 9: add the new
images to the old ones when they are extra variability, favour them when they
are an evolution) and the rerun of the pipeline. It never touches the data: it
writes ``<out>/<NAME>/`` with

- ``manifest.csv``: the old images (from the current index: only validated
  ones) and the batch, their paths relative to a common data root, their label,
  an ``origin`` column (``original`` or NAME) and the old metadata columns;
- the sealed test manifest: a copy of the current split's test manifest, whose
  images stay the test set (``split.sealed_test``, matched by sha256), so that
  the retrained model is measured on the very images the old one was
  (docs/practices.md section 3: the test set never influences a decision);
- ``config.yaml``: the current config pointed at them, with
  ``evaluation.unseal_reason`` set (evaluating the sealed test set again is the
  point; the event log records it).

Then ``snakemake --cores all --configfile <out>/<NAME>/config.yaml`` reruns the
pipeline. docs/retraining.md walks through it. Every path is relative to the
working directory (the project root), like the pipeline's.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from imgclf.core.config import load_config, load_schema, validate_config
from imgclf.core.errors import ImgclfError
from imgclf.data import IMAGE_EXTENSIONS
from imgclf.core.io import atomic_write_text, read_index, sha256_file, umask
from imgclf.data import data_root, list_image_folder, list_manifest, read_user_csv
from imgclf.layout import RunLayout

#: The split's test manifest and its sealed copy. This module reads the test manifest only
#: to copy it (the sealed set of the rerun) and to keep its images in the data, never to
#: evaluate: tests/test_workflow.py lists it among the modules allowed to name it.
SPLIT_TEST_MANIFEST = "test.csv"
SEALED_MANIFEST = "sealed_test.csv"

ORIGINAL = "original"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MODES = {"add": "adding the new images to the old ones (extra variability)",
         "favour": "favouring the new images (an evolution)"}


class RetrainError(ImgclfError):
    """The batch, the current data or the output folder does not allow a retraining."""


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def common_root(folders: list[str]) -> str:
    """The common ancestor of the data folders: relative to the working directory when inside it.

    Symbolic links are followed only when needed: validation refuses a file whose real path
    leaves the data root, so the root must contain the real folders.
    """
    absolute = [os.path.abspath(f) for f in folders]
    root = os.path.commonpath(absolute)
    if not all(_within(os.path.realpath(f), os.path.realpath(root)) for f in absolute):
        root = os.path.commonpath([os.path.realpath(f) for f in absolute])
    cwd = os.getcwd()
    return os.path.relpath(root, cwd) if _within(root, cwd) else root


def _rebase(folder: str, paths: pd.Series, root: str) -> pd.Series:
    """Paths relative to ``folder`` made relative to ``root`` (POSIX separators)."""
    base = os.path.abspath(folder)
    if not _within(base, os.path.abspath(root)):
        base = os.path.realpath(folder)
    return paths.map(lambda p: Path(os.path.relpath(os.path.join(base, p), os.path.abspath(root))).as_posix())


def list_labelled_batch(batch: Path, classes: list[str], path_column: str = "path",
                       label_column: str = "label") -> tuple[str, pd.DataFrame]:
    """The labelled images of the batch: its folder and a table (path relative to it, label, extra columns).

    Raises:
        RetrainError: Unlabelled images, unknown labels, missing or refused files.
    """
    unlabelled = ("retraining needs labels: give the batch as a folder with one sub-folder per class "
                  "(<batch>/<class>/<image>) or as a CSV manifest with path and label columns")
    if batch.is_dir():
        try:
            listing = list_image_folder(batch)
        except ImgclfError as error:
            raise RetrainError(f"the batch {batch} is not labelled: {error.message}", unlabelled) from None
        loose = [f for finding in listing.findings if finding.code == "file_outside_class"
                 for f in finding.files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            raise RetrainError(f"{len(loose)} image(s) of the batch lie outside any class folder, so they have "
                               f"no label: {', '.join(loose[:5])}", unlabelled)
        folder = batch
    elif batch.is_file():
        table = read_user_csv(batch, "--batch")
        if path_column not in table.columns:
            raise RetrainError(f"the batch manifest {batch} has no {path_column!r} column "
                               f"(columns: {', '.join(table.columns)})", "name it with --path-column")
        if label_column not in table.columns:
            raise RetrainError(f"the batch manifest {batch} has no {label_column!r} column: the batch is not "
                               f"labelled (columns: {', '.join(table.columns)})",
                               unlabelled + " (--label-column names it)")
        empty = table[label_column].isna() | (table[label_column].str.strip() == "")
        if empty.any():
            lines = ", ".join(str(i + 2) for i in table.index[empty][:10])
            raise RetrainError(f"{int(empty.sum())} image(s) of the batch manifest {batch} have no label "
                               f"(lines {lines})", unlabelled)
        listing = list_manifest(batch, batch.parent, path_column, label_column)
        folder = batch.parent
    else:
        raise RetrainError(f"the batch {batch} does not exist",
                           "give the folder (<batch>/<class>/<image>) or the CSV manifest of the labelled batch")
    if listing.rejected:
        shown = ", ".join(f"{r.path} ({r.problem})" for r in listing.rejected[:5])
        raise RetrainError(f"{len(listing.rejected)} file(s) of the batch cannot be used: {shown}",
                           "fix or remove them (paths of a manifest are relative to its folder)")
    entries = listing.entries
    if entries.empty:
        raise RetrainError(f"the batch {batch} holds no image", "add the labelled images of the batch")
    unknown = sorted(set(entries["label"]) - set(classes))
    if unknown:
        raise RetrainError(
            f"the batch has label(s) {', '.join(map(repr, unknown))} that are not among the current classes "
            f"({', '.join(classes)})",
            "a new class needs a new test set (the sealed one cannot measure it): fix the labels, or add "
            "the class to the data and rerun the pipeline with a new split and evaluation.unseal_reason")
    return str(folder), entries.reset_index(drop=True)


def current_data(config: dict[str, Any], index_path: Path, splits: Path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The current data root, index and test manifest, checked against each other.

    Raises:
        RetrainError: Something the pipeline should have made first is missing or stale.
    """
    run_first = ("run the pipeline on the current config first, at least until the split: "
                 "snakemake --cores all split")
    data = config["data"]
    digits = str(RunLayout(Path(".")).digits)
    root = data_root(data, digits)
    if data["source"] == "digits" and not Path(digits).is_dir():
        raise RetrainError(f"the embedded digits ({digits}) are a pipeline output and do not exist yet",
                           run_first)
    if not Path(root).is_dir():
        raise RetrainError(f"the current data root {root} does not exist",
                           "run from the project root, with the data in place (dvc pull, if it is versioned)")
    test_path = splits / SPLIT_TEST_MANIFEST
    for path in (index_path, test_path):
        if not path.is_file():
            raise RetrainError(f"{path} does not exist", run_first)
    index = read_index(index_path)
    test = pd.read_csv(test_path, dtype=str, keep_default_na=False, na_values=[""])
    summary_path = splits / "split.json"
    if summary_path.is_file():
        import json

        recorded = json.loads(summary_path.read_text(encoding="utf-8")).get("index_sha256")
        if recorded and recorded != sha256_file(index_path):
            raise RetrainError(f"the split in {splits} was made from another index than {index_path}", run_first)
    absent = [p for p in index["path"] if not os.path.isfile(os.path.join(root, p))]
    if absent:
        raise RetrainError(
            f"{index_path} does not describe the data of the config: {len(absent)} of its images are not "
            f"under the data root {root}, e.g. {absent[0]}",
            "pass --config the config the last run used (after a retraining, its generated config), "
            "or rerun the pipeline with this one first")
    missing = sorted(set(test["sha256"]) - set(index["sha256"]))
    if missing:
        raise RetrainError(f"{len(missing)} image(s) of the test manifest in {splits} are not in {index_path}",
                           run_first)
    return root, index, test


def _metadata_columns(index: pd.DataFrame) -> list[str]:
    """The index's columns that came from the metadata or manifest (the group columns)."""
    from imgclf.data import RESERVED_COLUMNS

    return [c for c in index.columns if c not in RESERVED_COLUMNS and c not in ("path", "label", "origin")]


def keep_share(old: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A seeded share of each class of ``old`` (rows sorted by path first: the draw ignores row order)."""
    old = old.sort_values("path", kind="stable")
    rng = np.random.default_rng(seed)
    kept = []
    for label in sorted(old["label"].unique()):
        rows = old[old["label"] == label]
        n = round(share * len(rows))
        kept.append(rows.iloc[np.sort(rng.choice(len(rows), size=n, replace=False))])
    return pd.concat(kept) if kept else old.iloc[:0]


def build(config: dict[str, Any], batch: Path, name: str, mode: str, keep_old: float,
          index_path: Path, splits: Path, out_dir: Path, columns: tuple[str, str] = ("path", "label")
          ) -> dict[str, Any]:
    """Everything the rerun needs, in memory: the manifest, the sealed test copy, the config, counts."""
    old_root, index, test = current_data(config, index_path, splits)
    classes = sorted(index["label"].unique())
    batch_root, entries = list_labelled_batch(batch, classes, *columns)
    if "origin" in index.columns and (index["origin"] == name).any():
        raise RetrainError(f"the current data already holds a batch named {name!r} (column origin)",
                           "choose another --name")
    group = config["split"]["group_column"]
    if group and (group not in entries.columns or entries[group].isna().any()):
        raise RetrainError(
            f"split.group_column is {group!r}: every new image needs its group, and the batch gives "
            + ("no such column" if group not in entries.columns
               else f"none for {int(entries[group].isna().sum())} image(s)"),
            f"give the batch as a CSV manifest with path, label and {group} columns")

    is_test = index["sha256"].isin(test["sha256"])
    old = index
    if mode == "favour":
        old = pd.concat([index[is_test], keep_share(index[~is_test], keep_old, config["seed"])])
    root = common_root([old_root, batch_root])
    metadata = _metadata_columns(index)
    old_rows = pd.DataFrame({"path": _rebase(old_root, old["path"], root), "label": old["label"],
                             "origin": old["origin"] if "origin" in old.columns else ORIGINAL})
    for column in metadata:
        old_rows[column] = old[column].to_numpy()
    extra = [c for c in entries.columns if c not in ("path", "label", "origin")]
    new_rows = pd.DataFrame({"path": _rebase(batch_root, entries["path"], root), "label": entries["label"],
                             "origin": name})
    for column in extra:
        new_rows[column] = entries[column].to_numpy()
    manifest = pd.concat([old_rows.sort_values("path"), new_rows.sort_values("path")], ignore_index=True)
    manifest = manifest[["path", "label", "origin", *metadata, *[c for c in extra if c not in metadata]]]
    twice = manifest["path"].duplicated(keep=False)
    if twice.any():
        raise RetrainError(f"{int(twice.sum())} image paths would appear twice in the new manifest, e.g. "
                           f"{manifest.loc[twice, 'path'].iloc[0]}",
                           "keep the batch outside the current data folder")

    target = out_dir / name
    new_config = copy.deepcopy(config)
    data = new_config["data"]
    data.update(source="manifest", manifest=(target / "manifest.csv").as_posix(), root=root,
                path_column="path", label_column="label", metadata=None)
    if data["group_columns"] is not None:
        data["group_columns"] = [*data["group_columns"], *(["origin"] if "origin" not in data["group_columns"]
                                                           else [])]
    new_config["split"]["sealed_test"] = (target / SEALED_MANIFEST).as_posix()
    new_config["evaluation"]["unseal_reason"] = (
        f"retraining {MODES[mode]} with the labelled batch {name} ({len(entries)} images from {batch}); "
        "the sealed test set is evaluated again by design, to compare the new model with the old one")
    validate_config(new_config, source="the generated config")

    counts = pd.DataFrame({
        "old": index["label"].value_counts(), "old test": index.loc[is_test, "label"].value_counts(),
        "new": entries["label"].value_counts(),
        "kept old": old.loc[~old["sha256"].isin(test["sha256"]), "label"].value_counts(),
        "total": manifest["label"].value_counts()}).reindex(classes).fillna(0).astype(int).rename_axis("class")
    return {"manifest": manifest, "test": test, "config": new_config, "counts": counts, "root": root,
            "batch_root": batch_root, "target": target, "n_new": len(entries), "old_root": old_root}


def in_schema_order(config: Any, schema: dict[str, Any]) -> Any:
    """The config with its keys in the schema's order (the order config.schema.yaml documents them)."""
    if not isinstance(config, dict):
        return config
    properties = schema.get("properties", {})
    order = {key: i for i, key in enumerate(properties)}
    return {key: in_schema_order(config[key], properties.get(key, {}))
            for key in sorted(config, key=lambda k: (order.get(k, len(order)), k))}


def config_text(config: dict[str, Any], command: str, source: str, target: Path) -> str:
    header = (
        f"# Generated by `{command}`\n"
        f"# from {source} (the current config) and the labelled batch: the same settings, with the data\n"
        f"# now {target.as_posix()}/manifest.csv (old and new images), the test set sealed\n"
        f"# (split.sealed_test: the current test images stay the test set), and evaluation.unseal_reason\n"
        f"# set (the sealed test set is evaluated again, on record). Rerun the pipeline from the project root:\n"
        f"#     snakemake --cores all --configfile {target.as_posix()}/config.yaml\n"
        "# docs/retraining.md explains each step.\n")
    return header + yaml.safe_dump(in_schema_order(config, load_schema()), sort_keys=False, allow_unicode=True,
                                   width=100)


def write_atomically(target: Path, files: dict[str, str], force: bool) -> None:
    """Write the files into ``target`` through a temporary folder and a rename."""
    if target.exists() and not force:
        raise RetrainError(f"{target} already exists", "choose another --name, or pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        os.chmod(temporary, 0o777 & ~umask())  # mkdtemp's folder is private; results are shared
        for name, text in files.items():
            atomic_write_text(temporary / name, text)
        if target.exists():
            old = target.with_name(f".{target.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imgclf.retrain",
        description=("Append a labelled batch to the current data and write what a rerun needs: a manifest, "
                     "the sealed copy of the current test manifest and a config (docs/retraining.md). "
                     "Nothing of the data is modified. Paths are relative to the working directory."))
    parser.add_argument("--batch", required=True,
                        help="the labelled batch: a folder <batch>/<class>/<image>, or a CSV manifest with path "
                             "and label columns (paths relative to its folder; extra columns kept)")
    parser.add_argument("--name", required=True, help="a name for the batch (its origin in the manifest, "
                                                      "and the output folder)")
    parser.add_argument("--mode", choices=sorted(MODES), default="add",
                        help="add: all old images and the new ones (extra variability); favour: the new ones and "
                             "a share of the old (an evolution). Default: %(default)s")
    parser.add_argument("--keep-old", type=float, default=None,
                        help="favour only: the share of the old non-test images kept, per class (default 0.5); "
                             "the old test images are always kept: they are the sealed test set")
    parser.add_argument("--path-column", default="path",
                        help="a CSV batch's column of image paths (default: %(default)s)")
    parser.add_argument("--label-column", default="label",
                        help="a CSV batch's column of labels (default: %(default)s)")
    parser.add_argument("--config", default="config/config.yaml",
                        help="the config the pipeline ran with, read alone like snakemake's "
                             "--configfile (default: %(default)s)")
    run = RunLayout(Path("."))
    parser.add_argument("--index", default=str(run.index), help="the current index (default: %(default)s)")
    parser.add_argument("--splits", default=str(run.split),
                        help="the current split's folder, whose test manifest is sealed (default: %(default)s)")
    parser.add_argument("--out", default="data/retrain", help="where <NAME>/ is written (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing <out>/<NAME>/")
    args = parser.parse_args(argv)
    if args.keep_old is not None and args.mode != "favour":
        parser.error("--keep-old applies to --mode favour only")
    keep_old = 0.5 if args.keep_old is None else args.keep_old
    if not 0 <= keep_old <= 1:
        parser.error("--keep-old must be between 0 and 1")
    if not NAME_PATTERN.match(args.name) or args.name == ORIGINAL:
        parser.error(f"--name {args.name!r}: use letters, digits, '.', '_' or '-' (not {ORIGINAL!r})")
    command = shlex.join(["python", "-m", "imgclf.retrain", *(argv if argv is not None else sys.argv[1:])])
    try:
        config = load_config(args.config)
        target = Path(args.out) / args.name
        if target.exists() and not args.force:
            raise RetrainError(f"{target} already exists", "choose another --name, or pass --force to replace it")
        batch = Path(args.batch)
        if _within(os.path.abspath(batch), os.path.abspath(target)):
            raise RetrainError(f"the batch {batch} lies inside the output folder {target}",
                               "keep the batch's images elsewhere (e.g. data/batches/<name>)")
        result = build(config, batch, args.name, args.mode, keep_old, Path(args.index), Path(args.splits),
                       Path(args.out), (args.path_column, args.label_column))
        write_atomically(target, {
            "manifest.csv": result["manifest"].to_csv(index=False, lineterminator="\n"),
            SEALED_MANIFEST: result["test"].to_csv(index=False, lineterminator="\n"),
            "config.yaml": config_text(result["config"], command, args.config, target),
        }, args.force)
    except ImgclfError as error:
        print(f"imgclf.retrain: {error}", file=sys.stderr)
        return 1
    print_summary(result, args, keep_old)
    return 0


def print_summary(result: dict[str, Any], args: argparse.Namespace, keep_old: float) -> None:
    target = result["target"].as_posix()
    mode = MODES[args.mode] + (f", keeping {keep_old:.0%} of the old non-test images per class"
                               if args.mode == "favour" else "")
    images = result["batch_root"] if Path(args.batch).is_file() else args.batch
    print(f"Retraining {args.name!r}: {mode}.\n")
    print(result["counts"].to_string())
    print(f"\nWrote {target}/:\n"
          f"  manifest.csv      {len(result['manifest'])} images, paths relative to data.root "
          f"{result['root']!r} (column origin: {', '.join(result['manifest']['origin'].unique())})\n"
          f"  {SEALED_MANIFEST:<17} the {len(result['test'])} current test images: they stay the test set\n"
          f"  config.yaml       {args.config} with data.*, split.sealed_test and evaluation.unseal_reason set\n\n"
          f"Rerun the pipeline (from this folder, the project root):\n"
          f"  snakemake --cores all --configfile {target}/config.yaml\n\n"
          f"With DVC, version the new images and the generated files:\n"
          f"  dvc add {images}\n"
          f"  git add {images}.dvc {target} && git commit -m 'retraining {args.name}'\n"
          f"  (to rerun with dvc repro instead: cp {target}/config.yaml config/config.yaml, "
          f"python -m imgclf.dvc_pipeline, dvc repro)")


if __name__ == "__main__":
    sys.exit(main())
