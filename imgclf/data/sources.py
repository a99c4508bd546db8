"""Where images come from: an image folder, or a CSV manifest, plus metadata.

Both sources produce the same :class:`SourceListing`: one row per candidate
file with its path relative to the data root and its label, and the files
rejected before they were even opened (names that are not UTF-8, paths that
escape the root). Nothing here decodes an image.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.findings import Finding
from imgclf.data.imagefile import IMAGE_EXTENSIONS, file_kind, not_regular_detail


@dataclass
class Rejected:
    """A file refused while listing the source."""

    path: str
    problem: str
    detail: str


@dataclass
class SourceListing:
    """Candidate images of a data source.

    Attributes:
        root: The data root; every ``path`` is relative to it.
        entries: DataFrame with columns ``path`` and ``label`` and, for a
            manifest, its extra columns.
        rejected: Files refused before inspection.
        findings: Observations about the source itself (empty class folders,
            ignored non-image files...).
    """

    root: Path
    entries: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def data_root(data: dict[str, Any], digits_folder: str) -> str:
    """The folder the images' paths are relative to, from the ``data`` config section.

    Args:
        data: The ``data`` config section.
        digits_folder: Where the export_digits rule writes the embedded digits (it declares the
            path; used when ``data.source`` is digits).
    """
    if data["source"] == "digits":
        return digits_folder
    if data["source"] == "manifest" and not data["root"]:
        return str(Path(data["manifest"]).parent)
    return data["root"]


def _printable(name: str) -> str:
    """A file name that is safe to print and to write as UTF-8."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def non_regular_mode(path: str | Path) -> int | None:
    """The ``st_mode`` of a path that exists but is not a regular file (a FIFO, a socket, a
    device, a folder), else None. Links are followed (a link to an image is an image); nothing
    is opened. A path that cannot be examined gives None: reading it reports why."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else mode


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def list_image_folder(root: Path, known_files: tuple[Path, ...] = ()) -> SourceListing:
    """List ``<root>/<class>/<image>`` (sub-folders inside a class are allowed).

    Args:
        root: The folder whose sub-folders are the classes.
        known_files: Files of the configuration (a metadata CSV kept in the
            root) that are not reported as stray files.

    Returns:
        The listing. Hidden files are skipped; other non-image files, files
        outside any class folder and empty class folders are reported.

    Raises:
        ImgclfError: If the root does not exist or holds no class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImgclfError(
            f"data folder {root} does not exist or is not a folder",
            "set data.root in the config to the folder that holds one sub-folder per class",
        )
    real_root = root.resolve()
    rows: list[tuple[str, str]] = []
    rejected: list[Rejected] = []
    not_images: list[str] = []
    loose_files: list[str] = []
    empty_classes: list[str] = []
    class_dirs = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    known = {Path(f).resolve() for f in known_files}
    for entry in class_dirs:
        name = _printable(entry.name)
        if not entry.is_dir():
            if entry.resolve() not in known:
                loose_files.append(name)
            continue
        if not _is_utf8(entry.name):
            rejected.append(Rejected(name + "/", "non_utf8_name",
                                     "the class folder's name is not valid UTF-8"))
            continue
        if not _within(entry.resolve(), real_root):
            rejected.append(Rejected(name + "/", "path_escapes_root",
                                     f"the class folder links outside the data root (to {entry.resolve()})"))
            continue
        n_before = len(rows)
        seen_dirs: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(entry, followlinks=True):
            current = Path(dirpath)
            real_dir = current.resolve()
            if real_dir in seen_dirs or not _within(real_dir, real_root):
                if not _within(real_dir, real_root):
                    rejected.append(Rejected(
                        _printable(current.relative_to(root).as_posix()) + "/", "path_escapes_root",
                        f"a linked folder points outside the data root (to {real_dir})"))
                dirnames[:] = []
                continue
            seen_dirs.add(real_dir)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                full = current / filename
                rel = full.relative_to(root).as_posix()
                if not _is_utf8(rel):
                    rejected.append(Rejected(_printable(rel), "non_utf8_name",
                                             "the file name is not valid UTF-8"))
                    continue
                if not _within(full.resolve(), real_root):
                    rejected.append(Rejected(rel, "path_escapes_root",
                                             f"the file links outside the data root (to {full.resolve()})"))
                    continue
                if full.suffix.lower() not in IMAGE_EXTENSIONS:
                    not_images.append(rel)
                    continue
                mode = non_regular_mode(full)
                if mode is not None:  # a FIFO named pipe.png: never opened
                    rejected.append(Rejected(rel, "not_a_regular_file", not_regular_detail(rel, mode)))
                    continue
                rows.append((rel, entry.name))
        if len(rows) == n_before and not any(r.path.startswith(name + "/") for r in rejected):
            empty_classes.append(name)

    findings: list[Finding] = []
    if not class_dirs or all(not p.is_dir() for p in class_dirs):
        raise ImgclfError(
            f"data folder {root} has no class sub-folders",
            "arrange the images as <root>/<class>/<image>, one sub-folder per class",
        )
    if empty_classes:
        findings.append(Finding(
            "empty_class", "warning",
            f"{len(empty_classes)} class folder(s) hold no image; they are ignored",
            files=[c + "/" for c in empty_classes],
            hint="add images to these folders, or remove them if the class is not wanted"))
    if not_images:
        findings.append(Finding(
            "non_image_file", "warning",
            f"{len(not_images)} file(s) without an image extension were ignored",
            files=not_images,
            hint="remove them from the data folder, or rename them if they are images"))
    if loose_files:
        findings.append(Finding(
            "file_outside_class", "warning",
            f"{len(loose_files)} file(s) lie directly in the data root, outside any class folder; ignored",
            files=loose_files, hint="move each image into the folder of its class"))
    entries = pd.DataFrame(rows, columns=["path", "label"])
    return SourceListing(root, entries, rejected, findings)


def list_manifest(manifest: Path, root: Path, path_column: str, label_column: str | None,
                  key: str = "data.manifest") -> SourceListing:
    """List the images of a CSV manifest.

    Args:
        manifest: CSV with one row per image.
        root: Folder the manifest's paths are relative to.
        path_column: Column holding the image paths.
        label_column: Column holding the labels; None for unlabelled images (a monitored batch),
            whose label is left empty.
        key: The config key naming the manifest, for messages.

    Returns:
        The listing; extra manifest columns are kept.

    Raises:
        ImgclfError: If the manifest cannot be read, lacks a column, has an
            empty label or lists a path twice.
    """
    table = read_user_csv(manifest, key)
    prefix = key.rsplit(".", 1)[0]
    for column, column_key in ((path_column, f"{prefix}.path_column"), (label_column, f"{prefix}.label_column")):
        if column is not None and column not in table.columns:
            raise ImgclfError(
                f"{manifest}: no column {column!r} (columns: {', '.join(table.columns)})",
                f"name the right column with {column_key} in the config")
    if table.empty:
        raise ImgclfError(f"{manifest} lists no image (it has a header and no rows)",
                          "add one row per image")
    if label_column is None:
        table = table.drop(columns=["label"], errors="ignore").assign(label=pd.NA)
    table = table.rename(columns={path_column: "path", label_column or "label": "label"})
    for column in ["path", "label"] if label_column is not None else ["path"]:
        what = column
        table[column] = table[column].str.strip()
        empty = table[column].isna() | (table[column] == "")
        if empty.any():
            lines = ", ".join(str(i + 2) for i in table.index[empty][:10])
            raise ImgclfError(f"{manifest}: {int(empty.sum())} row(s) have no {what} (lines {lines})",
                              f"give every row a {what}, or remove the rows")

    root = Path(root)
    real_root = root.resolve()
    rejected: list[Rejected] = []
    keep = np.zeros(len(table), dtype=bool)
    normalised: list[str] = []
    for i, raw in enumerate(table["path"]):
        candidate = Path(raw)
        if "\\" in raw and not (root / candidate).exists():
            candidate = Path(raw.replace("\\", "/"))  # a manifest written on Windows
        full = candidate if candidate.is_absolute() else root / candidate
        if not _within(full.resolve(), real_root):
            rejected.append(Rejected(raw, "path_escapes_root",
                                     f"the path leads outside the data root {root}"))
            normalised.append(raw)
            continue
        normalised.append(Path(os.path.normpath(full)).relative_to(Path(os.path.normpath(root))).as_posix()
                          if not candidate.is_absolute()
                          else full.resolve().relative_to(real_root).as_posix())
        if not full.is_file():
            mode = non_regular_mode(full)
            if mode is not None:  # a FIFO, a device, a folder: never opened
                rejected.append(Rejected(raw, "not_a_regular_file", not_regular_detail(raw, mode)))
            else:
                rejected.append(Rejected(raw, "missing_file", "the manifest lists it but it does not exist"))
            continue
        keep[i] = True
    table["path"] = normalised
    duplicated = table["path"].duplicated(keep=False)
    if duplicated.any():
        same = table.loc[duplicated].groupby("path").size()
        raise ImgclfError(
            f"{manifest}: {int(duplicated.sum())} rows name the same image, e.g. "
            f"{same.index[0]!r} ({same.iloc[0]} rows, after resolving './' and '..')",
            "keep one row per image")
    return SourceListing(root, table.loc[keep].reset_index(drop=True), rejected, [])


def _separator(path: Path) -> str:
    """The separator of a CSV's header among , ; tab and | (a comma when it has one column).

    Not csv.Sniffer: on a one-column file it takes a letter of the header for the separator.
    """
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return ","
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_user_csv(path: Path, key: str) -> pd.DataFrame:
    """Read a user's CSV as text; the separator (, ; tab |) is detected.

    Raises:
        ImgclfError: The file is missing, is not a regular file (a FIFO would block the
            reading forever: it is not opened), or is not a readable CSV.
    """
    mode = non_regular_mode(path)
    if mode is not None:
        raise ImgclfError(f"{path} is {file_kind(mode)}, not a regular file; it was not opened",
                          f"point {key} to a CSV file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], sep=_separator(path),
                           engine="python", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImgclfError(f"{path} does not exist", f"check {key} in the config") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ImgclfError(f"{path} is not a readable CSV file: {exc}",
                          "save it as comma-separated UTF-8 text with a header row") from None


@dataclass
class MetadataJoin:
    """The result of joining metadata onto the listing."""

    entries: pd.DataFrame
    findings: list[Finding]


def join_metadata(
    entries: pd.DataFrame,
    metadata: Path,
    file_column: str,
    group_columns: list[str] | None,
    required_column: str | None,
    reserved: frozenset[str] = frozenset(),
) -> MetadataJoin:
    """Join a metadata CSV onto the listing by file path.

    Args:
        entries: The listing (``path``, ``label``...).
        metadata: CSV with one row per image.
        file_column: Column with the image paths relative to the data root.
        group_columns: Columns to keep; None keeps every other column.
        required_column: A column every image must have a value for (the
            split's group column): missing rows or values then are errors.
        reserved: Column names left out when ``group_columns`` is None.

    Returns:
        The entries with the group columns added, and the findings.

    Raises:
        ImgclfError: If the metadata cannot be read, lacks a column, or lists
            a file twice.
    """
    table = read_user_csv(metadata, "data.metadata")
    if file_column not in table.columns:
        raise ImgclfError(
            f"{metadata}: no column {file_column!r} (columns: {', '.join(table.columns)})",
            "name the column of file paths with data.metadata_file_column")
    if group_columns is None:
        group_columns = [c for c in table.columns
                         if c != file_column and c not in entries.columns and c not in reserved]
    missing_columns = [c for c in group_columns if c not in table.columns]
    if missing_columns:
        raise ImgclfError(
            f"{metadata}: no column(s) {', '.join(map(repr, missing_columns))} "
            f"(columns: {', '.join(table.columns)})",
            "fix data.group_columns in the config")
    dup = table[file_column].duplicated(keep=False)
    if dup.any():
        raise ImgclfError(
            f"{metadata}: {int(dup.sum())} rows describe the same file, e.g. "
            f"{table.loc[dup, file_column].iloc[0]!r}",
            "keep one metadata row per image")
    table = table[[file_column, *group_columns]].rename(columns={file_column: "path"})
    clash = [c for c in group_columns if c in entries.columns]
    entries = entries.drop(columns=clash)
    merged = entries.merge(table, on="path", how="left", indicator=True)
    findings: list[Finding] = []
    no_row = merged.loc[merged["_merge"] == "left_only", "path"].tolist()
    severity = "error" if required_column else "warning"
    if no_row:
        findings.append(Finding(
            "metadata_missing_row", severity,
            f"{len(no_row)} image(s) have no row in the metadata {metadata.name}",
            files=no_row,
            hint=("add their rows to the metadata; the split cannot keep their groups apart otherwise"
                  if required_column else "add their rows to the metadata so the bias audit covers them")))
    known = set(entries["path"])
    unknown = [p for p in table["path"] if p not in known]
    if unknown:
        findings.append(Finding(
            "metadata_unknown_file", "warning",
            f"{len(unknown)} metadata row(s) name files that are not among the images",
            files=unknown, hint="remove these rows, or check the paths (relative to data.root)"))
    merged = merged.drop(columns="_merge")
    for column in group_columns:
        present = merged["path"].isin(table["path"])
        empty = merged.loc[present & merged[column].isna(), "path"].tolist()
        if empty:
            findings.append(Finding(
                "metadata_missing_value",
                "error" if column == required_column else "warning",
                f"column {column!r} is empty for {len(empty)} image(s)",
                files=empty, details={"column": column},
                hint=f"fill in {column!r} for these images"
                + (" (it is split.group_column)" if column == required_column else "")))
    return MetadataJoin(merged, findings)


def manifest_fingerprint(manifest: str | Path, root: str | Path, path_column: str) -> str:
    """Like :func:`listing_fingerprint`, for the files a manifest lists (and the manifest itself)."""
    digest = hashlib.sha256(Path(manifest).read_bytes() if Path(manifest).is_file() else b"absent")
    try:
        paths = read_user_csv(Path(manifest), "data.manifest").get(path_column, pd.Series(dtype=str))
    except ImgclfError:
        return digest.hexdigest()
    for raw in paths.dropna():
        full = Path(root) / str(raw).strip()
        try:
            size = full.stat().st_size
        except OSError:
            size = -1
        digest.update(str(raw).encode() + b"\0" + str(size).encode() + b"\n")
    return digest.hexdigest()


def listing_fingerprint(root: str | Path) -> str:
    """A cheap fingerprint of a folder's files: their relative paths and sizes.

    Snakemake sees a changed input folder only when the folder's own mtime
    changes, which adding an image inside a class folder does not do. Declared
    as a rule param, this fingerprint makes Snakemake rerun validation when a
    file is added, removed, renamed or changes size. Modification times are
    left out on purpose: a checkout (git, DVC) that rewrites them without
    changing the data must not trigger a rerun.

    Args:
        root: The folder (absent: the fingerprint says so).

    Returns:
        A hex SHA-256 digest.
    """
    digest = hashlib.sha256()
    root = Path(root)
    if not root.is_dir():
        return "absent"
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        # Hidden entries are skipped, as the listing skips them (.snakemake, .dvc...).
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            full = os.path.join(dirpath, name)
            try:
                size = os.stat(full).st_size
            except OSError:
                size = -1
            digest.update(os.fsencode(os.path.relpath(full, root)) + b"\0" + str(size).encode() + b"\n")
    return digest.hexdigest()


def source_class_names(data: dict[str, Any], root: str | Path) -> list[str] | None:
    """The classes of the configured data, read cheaply when the workflow loads.

    Used to refuse a target on a class that does not exist before any job runs.
    Validation may still drop a class (all its files bad); the evaluation
    checks the targets again against the index.

    Args:
        data: The ``data`` config section.
        root: The data root (ignored for the digits).

    Returns:
        Sorted class names, or None when they cannot be read (validation will say why).
    """
    if data["source"] == "digits":
        return [str(d) for d in range(10)]
    if data["source"] == "folder":
        base = Path(root)
        if not base.is_dir():
            return None
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    try:
        table = read_user_csv(Path(data["manifest"]), "data.manifest")
    except ImgclfError:
        return None
    if data["label_column"] not in table.columns:
        return None
    return sorted({str(v).strip() for v in table[data["label_column"]].dropna() if str(v).strip()})
