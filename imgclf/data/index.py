"""The data stage: list a configured source, join its metadata, validate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError
from imgclf.core.findings import Finding
from imgclf.data.sources import join_metadata, list_image_folder, list_manifest
from imgclf.data.imagefile import RECORD_FIELDS
from imgclf.data.validation import INDEX_COLUMNS, ProgressCallback, ValidationOptions, ValidationResult, validate_dataset

#: Column names the index computes itself; a user's column cannot take them.
RESERVED_COLUMNS = frozenset(INDEX_COLUMNS) | frozenset(RECORD_FIELDS) | {"group"}


def validate_source(
    config: dict[str, Any],
    data_root: str | Path,
    manifest: str | Path | None = None,
    metadata: str | Path | None = None,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> ValidationResult:
    """List, join and validate the configured data source.

    Args:
        config: The validated config.
        data_root: Folder the image paths are relative to.
        manifest: The CSV manifest, for ``data.source: manifest``.
        metadata: Optional metadata CSV joined by file path.
        workers: Processes used to inspect images.
        progress: Called with (done, total) during inspection.

    Returns:
        The validation result (index, findings, summary).
    """
    data = config["data"]
    data_root = Path(data_root)
    if data["source"] == "manifest":
        if manifest is None:
            raise ImgclfError("data.source is manifest but no manifest was given",
                              "set data.manifest in the config")
        listing = list_manifest(Path(manifest), data_root, data["path_column"], data["label_column"])
        extra = [c for c in listing.entries.columns if c not in ("path", "label")]
    else:
        listing = list_image_folder(data_root, known_files=tuple(Path(f) for f in (metadata,) if f))
        extra = []
    group_columns = data["group_columns"]
    if group_columns is not None:
        clash = sorted(set(group_columns) & RESERVED_COLUMNS)
        if clash:
            raise ImgclfError(
                f"data.group_columns names {', '.join(map(repr, clash))}, which the index computes itself",
                "rename these columns in your metadata or manifest (e.g. site_format), and in data.group_columns")
    else:
        # Keeping every column: a column named like a computed one is left out.
        extra = [c for c in extra if c not in RESERVED_COLUMNS]
    metadata_findings: list[Finding] = []
    split_group = config["split"]["group_column"]
    if metadata is not None:
        joined = join_metadata(listing.entries, Path(metadata), data["metadata_file_column"],
                               group_columns, required_column=split_group, reserved=RESERVED_COLUMNS)
        listing.entries = joined.entries
        metadata_findings = joined.findings
        columns = [c for c in listing.entries.columns if c not in ("path", "label")]
    else:
        columns = extra if group_columns is None else group_columns
        missing = [c for c in columns if c not in listing.entries.columns]
        if missing:
            raise ImgclfError(
                f"data.group_columns names {', '.join(map(repr, missing))}, but "
                + ("the manifest has no such column" if data["source"] == "manifest"
                   else "no metadata is configured"),
                "set data.metadata to a CSV with these columns, or remove them from data.group_columns")
    if split_group and split_group not in columns:
        raise ImgclfError(
            f"split.group_column {split_group!r} is not among the group columns "
            f"({', '.join(columns) or 'none'})",
            "add it to data.group_columns (and to the metadata or manifest), or set it to null")
    listing.entries = listing.entries[["path", "label", *columns]].copy()
    return validate_dataset(listing, ValidationOptions.from_config(config), metadata_findings,
                            columns, workers=workers, progress=progress)
