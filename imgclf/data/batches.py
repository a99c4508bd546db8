"""New images in batches: a folder (flat: unlabelled; one sub-folder per class: labelled) or a CSV
manifest (a path column, a label column when labels are known), as the monitor and predict stages
read them. :func:`list_batch` lists one; :func:`inspect_batch` reads every file as data validation
does (a bad file stops the stage or is dropped, per the stage's ``on_bad_file``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import DataValidationError, ImgclfError
from imgclf.core.findings import Finding, format_finding
from imgclf.data.imagefile import IMAGE_EXTENSIONS, InspectOptions, file_kind, not_regular_detail
from imgclf.data.sources import Rejected, list_image_folder, list_manifest, non_regular_mode, read_user_csv
from imgclf.data.validation import FILE_PROBLEMS, ProgressCallback, ValidationOptions, inspect_files

#: Columns of a batch's per-image table, before the model's outputs.
STAT_COLUMNS = ["path", "label", "sha256", "width", "height", "mode", "brightness", "contrast", "sharpness"]


@dataclass
class Batch:
    """A listed batch: image paths relative to ``root``, labels when known."""

    name: str
    source: str  # "flat folder", "class folders" or "manifest"
    root: Path
    entries: pd.DataFrame  # path, label (NA when unlabelled)
    labelled: bool
    rejected: list[Rejected] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def list_batch(name: str, settings: dict[str, Any], section: str = "monitor") -> Batch:
    """List the images of a configured batch.

    Args:
        name: The batch's name (a key of ``<section>.batches``).
        settings: Its entry: ``path``, and for a manifest ``path_column``, ``label_column`` and
            ``root`` (the folder its paths are relative to; default the manifest's folder).
        section: The config section that names the batch (``monitor`` or ``predict``), for messages.

    Raises:
        ImgclfError: The path does not exist, a folder mixes loose images and class folders,
            or the batch holds no image.
    """
    path = Path(settings["path"])
    key = f"{section}.batches.{name}.path"
    if path.is_file():
        label_column = settings.get("label_column", "label")
        # The default label column is optional (an unlabelled batch); one named explicitly is not.
        if label_column is not None and "label_column" not in settings:
            if label_column not in read_user_csv(path, key).columns:
                label_column = None
        root = Path(settings.get("root") or path.parent)
        listing = list_manifest(path, root, settings.get("path_column", "path"), label_column, key=key)
        batch = Batch(name, "manifest", root, listing.entries[["path", "label"]], label_column is not None,
                      listing.rejected, listing.findings)
    elif path.is_dir():
        children = [p for p in path.iterdir() if not p.name.startswith(".")]
        folders = [p for p in children if p.is_dir()]
        images = [p for p in children if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if folders and images:
            raise ImgclfError(
                f"batch {name!r} ({path}) holds both images and sub-folders "
                f"(e.g. {images[0].name} and {folders[0].name}/)",
                "put the images either directly in the folder (unlabelled) or in one sub-folder per "
                "class (labelled)")
        if folders:
            listing = list_image_folder(path)
            batch = Batch(name, "class folders", path, listing.entries, True, listing.rejected, listing.findings)
        else:
            # A FIFO, socket or device named like an image is a bad file, never opened.
            modes = {p.name: non_regular_mode(p) for p in children if p.suffix.lower() in IMAGE_EXTENSIONS}
            rejected = [Rejected(n, "not_a_regular_file", not_regular_detail(n, mode))
                        for n, mode in sorted(modes.items()) if mode is not None]
            entries = pd.DataFrame({"path": sorted(p.name for p in images), "label": pd.NA})
            ignored = sorted(p.name for p in children if p.is_file() and p not in images)
            findings = [Finding("non_image_file", "warning",
                                f"{len(ignored)} file(s) without an image extension were ignored", files=ignored,
                                hint="remove them from the batch folder, or rename them if they are images")
                        ] if ignored else []
            batch = Batch(name, "flat folder", path, entries, False, rejected, findings)
    elif (mode := non_regular_mode(path)) is not None:
        raise ImgclfError(f"batch {name!r}: {path} is {file_kind(mode)}, neither a folder of images nor a "
                          "CSV manifest; it was not opened", f"set {key} to a folder of images or a CSV manifest")
    else:
        raise ImgclfError(f"batch {name!r}: {path} does not exist",
                          f"set {key} to a folder of images or a CSV manifest")
    if batch.entries.empty and not batch.rejected:
        raise ImgclfError(f"batch {name!r} ({path}) holds no image",
                          f"add the new images (JPEG, PNG, BMP or GIF), or remove the batch from {section}.batches")
    return batch


def inspect_batch(batch: Batch, options: ValidationOptions, workers: int = 1,
                  progress: ProgressCallback | None = None,
                  section: str = "monitor") -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Read every file of the batch, as data validation does.

    Args:
        batch: The listed batch.
        options: Limits, and ``on_bad_file`` (from ``<section>.on_bad_file``).
        workers: Processes used to read the files.
        progress: Called with (done, total) while files are read.
        section: The stage's config section (``monitor`` or ``predict``), for messages.

    Returns:
        The usable images (:data:`STAT_COLUMNS`) sorted by path, and the files left out
        (path, problem, detail) when ``options.on_bad_file`` is ``drop``.

    Raises:
        DataValidationError: Bad files with ``on_bad_file: fail``, naming each and what to do;
            or no usable image at all.
    """
    entries = batch.entries.reset_index(drop=True)
    records = inspect_files(batch.root, entries["path"].tolist(),
                            InspectOptions(options.max_image_pixels, options.min_image_side), workers, progress)
    table = pd.concat([entries, pd.DataFrame.from_records(records, index=entries.index)], axis=1)
    bad = [(r.path, r.problem, r.detail) for r in batch.rejected]
    bad += list(table.loc[table["problem"].notna(), ["path", "problem", "problem_detail"]]
                .itertuples(index=False, name=None))
    if bad and options.on_bad_file == "fail":
        by_problem: dict[str, list[str]] = {}
        for path, problem, _ in bad:
            by_problem.setdefault(problem, []).append(path)
        lines = [format_finding(Finding(problem, "error", f"{len(paths)} file(s) {FILE_PROBLEMS[problem][0]}",
                                        files=paths, hint=FILE_PROBLEMS[problem][1]), max_files=10)
                 for problem, paths in sorted(by_problem.items())]
        raise DataValidationError(
            f"batch {batch.name!r} ({batch.root}): {len(bad)} of {len(table) + len(batch.rejected)} file(s) "
            "cannot be used:\n" + "\n".join(lines),
            f"fix or remove these files, or set {section}.on_bad_file: drop to go on with the rest")
    good = table[table["problem"].isna()]
    if good.empty:
        raise DataValidationError(f"batch {batch.name!r} ({batch.root}): none of its {len(table)} file(s) is a "
                                  "usable image", "check the batch's files (see the problems listed in the log)")
    dropped = [{"path": p, "problem": c, "detail": d} for p, c, d in bad]
    return good[STAT_COLUMNS].sort_values("path", kind="stable").reset_index(drop=True), dropped


def stratified_draw(table: pd.DataFrame, n: int, seed: int, column: str = "label") -> pd.DataFrame:
    """At most ``n`` rows, drawn (seeded) in proportion to each ``column`` value, in path order."""
    if len(table) <= n:
        return table.sort_values("path", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    shares = table[column].value_counts(normalize=True).sort_index()
    picked = []
    for value, share in shares.items():
        rows = np.flatnonzero((table[column] == value).to_numpy())
        take = min(len(rows), max(1, round(share * n)))
        picked.extend(rng.choice(rows, take, replace=False))
    return table.iloc[sorted(picked)].sort_values("path", kind="stable").reset_index(drop=True)
