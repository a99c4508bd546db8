"""Data validation: inspect every image and report findings with severities.

:func:`validate_dataset` takes a source listing and returns the index (one row
per usable image) and the findings. It never raises on bad data: deciding that
errors stop the run is :func:`raise_on_errors`'s job, at the edge.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import DataValidationError
from imgclf.core.findings import Finding, count_by_severity, format_finding
from imgclf.data.imagefile import RECORD_FIELDS, InspectOptions, extension_format, inspect_image, same_format
from imgclf.data.phash import near_duplicate_pairs
from imgclf.data.sources import SourceListing

#: Index columns, in order; group columns follow.
INDEX_COLUMNS = ["path", "sha256", "label", "width", "height", "mode", "format",
                 "bit_depth", "exif_orientation", "phash", "brightness", "contrast", "sharpness"]

#: Near-duplicate pairs listed by name in a finding (the count is always exact).
MAX_PAIRS = 200

#: What each file-level problem means, and what to do about it.
FILE_PROBLEMS: dict[str, tuple[str, str]] = {
    "unreadable": ("cannot be read", "check the file's permissions"),
    "zero_byte": ("are empty (0 bytes)", "re-export or re-download them"),
    "not_an_image": ("are not images (their content matches no image format)",
                     "remove them, or replace them with the real images"),
    "unsupported_format": ("are in a format TensorFlow does not decode",
                           "convert them to PNG or JPEG"),
    "corrupt": ("are corrupt and cannot be decoded", "re-export or re-download them"),
    "truncated": ("are truncated (the data ends early)", "re-export or re-download them"),
    "decompression_bomb": ("declare more pixels than validation.max_image_pixels allows",
                           "check them; raise validation.max_image_pixels if they are genuine"),
    "too_small": ("are smaller than validation.min_image_side", "remove them, or lower the limit"),
    "non_utf8_name": ("have names that are not valid UTF-8", "rename them with UTF-8 names"),
    "path_escapes_root": ("lie outside the data root (a link or '..' leads out)",
                          "copy the images into the data root, or point data.root higher"),
    "missing_file": ("are listed in the manifest but do not exist", "fix the manifest's paths"),
    "not_a_regular_file": ("are not regular files (a FIFO, a socket, a device or a folder); they were "
                           "not opened", "remove them, or replace each with the image file itself"),
    "label_conflict": ("are byte-identical copies filed under different labels",
                       "keep one copy under the right label"),
}


@dataclass(frozen=True)
class ValidationOptions:
    """The validation part of the config (see config.schema.yaml)."""

    on_bad_file: str = "fail"
    max_image_pixels: int = 89_478_485
    min_image_side: int = 8
    min_images_per_class: int = 10
    max_imbalance_ratio: float = 10.0
    near_duplicate_max_distance: int = 2
    image_size: tuple[int, int] = (32, 32)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ValidationOptions":
        """Build the options from a validated config."""
        v = config["validation"]
        return cls(
            on_bad_file=v["on_bad_file"],
            max_image_pixels=v["max_image_pixels"],
            min_image_side=v["min_image_side"],
            min_images_per_class=v["min_images_per_class"],
            max_imbalance_ratio=v["max_imbalance_ratio"],
            near_duplicate_max_distance=v["near_duplicate_max_distance"],
            image_size=tuple(config["data"]["image_size"]),
        )


@dataclass
class ValidationResult:
    """What validation produced.

    Attributes:
        index: One row per usable image (INDEX_COLUMNS + group columns),
            sorted by path.
        findings: Every finding, errors first.
        summary: Counts and figures for the report.
        dropped: Files excluded because ``on_bad_file`` is ``drop``.
    """

    index: pd.DataFrame
    findings: list[Finding]
    summary: dict[str, Any]
    dropped: list[dict[str, str]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "passed": not self.errors,
            "counts": count_by_severity(self.findings),
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "dropped": self.dropped,
        }


ProgressCallback = Callable[[int, int], None]


def inspect_files(
    root: Path,
    paths: list[str],
    options: InspectOptions,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """Inspect files, in parallel when ``workers > 1``, keeping their order."""
    full = [str(Path(root) / p) for p in paths]
    inspect = partial(inspect_image, options=options)
    records: list[dict[str, Any]] = []
    total = len(full)
    if workers <= 1 or total < 200:
        for i, path in enumerate(full, 1):
            records.append(inspect(path))
            if progress and (i % 500 == 0 or i == total):
                progress(i, total)
        return records
    with get_context("fork").Pool(workers) as pool:
        for i, record in enumerate(pool.imap(inspect, full, chunksize=64), 1):
            records.append(record)
            if progress and (i % 500 == 0 or i == total):
                progress(i, total)
    return records


def validate_dataset(
    listing: SourceListing,
    options: ValidationOptions,
    metadata_findings: list[Finding] | None = None,
    group_columns: list[str] | None = None,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> ValidationResult:
    """Inspect every listed image and check the data set as a whole.

    Args:
        listing: The candidate images (with metadata already joined).
        options: Limits and policies.
        metadata_findings: Findings from joining the metadata.
        group_columns: Columns of ``listing.entries`` carried into the index.
        workers: Processes used to inspect the files.
        progress: Called with (done, total) while files are inspected.

    Returns:
        The index, the findings and a summary.
    """
    group_columns = list(group_columns or [])
    entries = listing.entries.reset_index(drop=True)
    inspect_options = InspectOptions(options.max_image_pixels, options.min_image_side)
    records = inspect_files(listing.root, entries["path"].tolist(), inspect_options, workers, progress)
    inspected = pd.DataFrame.from_records(records, index=entries.index, columns=list(RECORD_FIELDS))
    table = pd.concat([entries, inspected], axis=1)

    # Label conflicts: the same bytes under two labels.
    sha_labels = table.dropna(subset=["sha256"]).groupby("sha256")["label"].nunique()
    conflicting = set(sha_labels[sha_labels > 1].index)
    conflict_rows = table["sha256"].isin(conflicting) & table["problem"].isna()
    table.loc[conflict_rows, "problem"] = "label_conflict"
    table.loc[conflict_rows, "problem_detail"] = "the same bytes appear under several labels"

    bad = [(r.path, r.problem, r.detail) for r in listing.rejected]
    bad += list(table.loc[table["problem"].notna(), ["path", "problem", "problem_detail"]]
                .itertuples(index=False, name=None))
    findings: list[Finding] = []
    dropped: list[dict[str, str]] = []
    severity = "error" if options.on_bad_file == "fail" else "warning"
    by_problem: dict[str, list[tuple[str, str]]] = {}
    for path, problem, detail in bad:
        by_problem.setdefault(problem, []).append((path, detail))
    for problem, items in sorted(by_problem.items()):
        what, todo = FILE_PROBLEMS[problem]
        action = ("they stop the run" if severity == "error" else "they were dropped")
        findings.append(Finding(
            problem, severity, f"{len(items)} file(s) {what}; {action}",
            files=[p for p, _ in items],
            hint=todo + ("; or set validation.on_bad_file: drop to leave them out"
                         if severity == "error" else ""),
            details={"reasons": {p: d for p, d in items[:50]}}))
        if severity == "warning":
            dropped += [{"path": p, "problem": problem, "detail": d} for p, d in items]

    good = table[table["problem"].isna()].copy()
    good["phash"] = good["phash"].map(lambda h: f"{int(h):016x}")
    good = good.sort_values("path", kind="stable").reset_index(drop=True)
    findings += metadata_findings or []
    findings += listing.findings
    findings += _emptied_class_findings(table, good)
    findings += _class_findings(good, options)
    findings += _format_findings(good, options)
    findings += _duplicate_findings(good, options)
    findings += _group_findings(good, group_columns)
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order[f.severity], f.code))

    index = good[INDEX_COLUMNS + group_columns]
    index = index.astype({"width": "int64", "height": "int64", "bit_depth": "int64"})
    summary = _summary(table, good, listing, dropped)
    return ValidationResult(index, findings, summary, dropped)


def _emptied_class_findings(table: pd.DataFrame, good: pd.DataFrame) -> list[Finding]:
    """Classes listed in the data whose every file is bad (dropped with ``on_bad_file: drop``): the
    class leaves the data set, which a file-level finding alone would not say."""
    listed = table["label"].astype(str).value_counts()
    emptied = sorted(set(listed.index) - set(good["label"].astype(str)))
    if not emptied:
        return []
    return [Finding(
        "class_emptied", "warning",
        f"{len(emptied)} class(es) lost every image to the bad-file findings above, and leave the data set: "
        + ", ".join(f"{name!r} ({int(listed[name])} bad file(s))" for name in emptied),
        count=len(emptied), details={"classes": emptied},
        hint="repair or replace these classes' files, or remove their folders if they are not meant to be "
             "classes; a target, objective or audit metric naming them stops the run at the split")]


def _class_findings(good: pd.DataFrame, options: ValidationOptions) -> list[Finding]:
    counts = good["label"].value_counts().sort_index()
    findings: list[Finding] = []
    if len(counts) == 0:
        return [Finding("no_images", "error", "no usable image was found",
                        hint="check data.root (or data.manifest) and the findings above")]
    if len(counts) < 2:
        findings.append(Finding(
            "single_class", "error", f"only one class ({counts.index[0]!r}) has usable images",
            hint="a classifier needs at least two classes: add a folder per class"))
    small = counts[counts < options.min_images_per_class]
    if len(small):
        findings.append(Finding(
            "class_too_small", "error",
            f"{len(small)} class(es) have fewer than {options.min_images_per_class} images: "
            + ", ".join(f"{k!r} ({v})" for k, v in small.items()),
            count=len(small), details={"counts": {str(k): int(v) for k, v in small.items()}},
            hint="add images to these classes, remove their folders, or lower "
                 "validation.min_images_per_class (the split needs a few per set and fold)"))
    ratio = float(counts.max() / counts.min())
    if ratio > options.max_imbalance_ratio:
        findings.append(Finding(
            "class_imbalance", "warning",
            f"the largest class has {ratio:.1f}x the images of the smallest "
            f"({counts.idxmax()!r}: {counts.max()}, {counts.idxmin()!r}: {counts.min()}), "
            f"above validation.max_imbalance_ratio = {options.max_imbalance_ratio}",
            count=len(counts), details={"imbalance_ratio": ratio},
            hint="collect more images of the small classes, or use class weights when training; "
                 "judge the model on balanced accuracy and per-class recall"))
    return findings


def _format_findings(good: pd.DataFrame, options: ValidationOptions) -> list[Finding]:
    findings: list[Finding] = []
    modes = good["mode"].value_counts().to_dict()
    if good["mode"].eq("CMYK").any():
        files = good.loc[good["mode"] == "CMYK", "path"].tolist()
        findings.append(Finding(
            "mode_cmyk", "warning", f"{len(files)} image(s) are CMYK; they are converted to RGB "
            "when loaded and their colours may shift", files=files,
            hint="convert them to RGB with the tool that made them, to control the conversion"))
    wide = good["bit_depth"] > 8
    if wide.any():
        files = good.loc[wide, "path"].tolist()
        findings.append(Finding(
            "high_bit_depth", "warning", f"{len(files)} image(s) have more than 8 bits per "
            "channel; they are reduced to 8 bits when loaded", files=files,
            hint="if the extra precision matters (e.g. medical images), rescale them yourself first"))
    palette_alpha = (good["mode"] == "P") & good["transparency"].astype(bool)
    if palette_alpha.any():
        files = good.loc[palette_alpha, "path"].tolist()
        findings.append(Finding(
            "palette_transparency", "warning", f"{len(files)} palette image(s) have transparency; "
            "transparent pixels take their palette colour when loaded", files=files,
            hint="flatten them onto the intended background"))
    alpha = good["mode"].isin(["RGBA", "LA", "PA"])
    if alpha.any():
        files = good.loc[alpha, "path"].tolist()
        findings.append(Finding(
            "alpha_channel", "warning", f"{len(files)} image(s) have an alpha channel; it is dropped "
            "when loaded", files=files, hint="flatten them if transparency carries meaning"))
    if len(modes) > 1:
        findings.append(Finding(
            "mixed_modes", "info", "images come in several modes: "
            + ", ".join(f"{m} ({n})" for m, n in sorted(modes.items())),
            count=len(good), details={"modes": modes},
            hint="all are decoded to the model's channels; check this is intended"))
    animated = good["frames"].fillna(1) > 1
    if animated.any():
        files = good.loc[animated, "path"].tolist()
        findings.append(Finding(
            "animated", "warning", f"{len(files)} image(s) have several frames (animated GIF, "
            "multi-picture JPEG); only the first frame is used", files=files,
            hint="extract the frame you want if the first is not it"))
    height, width = options.image_size
    small = (good["height"] < height) | (good["width"] < width)
    if small.any():
        files = good.loc[small, "path"].tolist()
        findings.append(Finding(
            "smaller_than_input", "warning",
            f"{len(files)} image(s) are smaller than the model input {height}x{width} "
            "(data.image_size) and will be upsampled", files=files,
            hint="lower data.image_size, or check that these images are the right ones"))
    rotated = good["exif_orientation"].notna() & (good["exif_orientation"] != 1)
    if rotated.any():
        files = good.loc[rotated, "path"].tolist()
        findings.append(Finding(
            "exif_orientation", "warning", f"{len(files)} image(s) carry an EXIF orientation; "
            "TensorFlow's decoders ignore it, so they are seen as stored, not as displayed",
            files=files, hint="apply the rotation to the pixels (e.g. exiftran -ai) if it matters"))
    mismatch = [p for p, f in zip(good["path"], good["format"])
                if not same_format(extension_format(p), f)]
    if mismatch:
        findings.append(Finding(
            "extension_mismatch", "info", f"{len(mismatch)} file(s) have an extension that does "
            "not match their content; they are decoded by content", files=mismatch))
    return findings


def _duplicate_findings(good: pd.DataFrame, options: ValidationOptions) -> list[Finding]:
    findings: list[Finding] = []
    dup = good["sha256"].duplicated(keep=False)
    if dup.any():
        files = good.loc[dup, "path"].tolist()
        n_sets = good.loc[dup, "sha256"].nunique()
        findings.append(Finding(
            "exact_duplicates", "warning",
            f"{len(files)} images are byte-identical copies of each other ({n_sets} sets) within "
            "their class; the split keeps each set in one place", files=files,
            hint="remove the extra copies unless they are intended (they weigh more in training)"))
    if options.near_duplicate_max_distance < 0 or len(good) < 2:
        return findings
    hashes = np.array([int(h, 16) for h in good["phash"]], dtype=np.uint64)
    pairs = near_duplicate_pairs(hashes, options.near_duplicate_max_distance)
    if len(pairs):
        same_bytes = good["sha256"].to_numpy()
        pairs = pairs[same_bytes[pairs[:, 0]] != same_bytes[pairs[:, 1]]]
    if not len(pairs):
        return findings
    labels = good["label"].to_numpy()
    paths = good["path"].to_numpy()
    cross = labels[pairs[:, 0]] != labels[pairs[:, 1]]
    for is_cross, code, severity, text, hint in (
        (False, "near_duplicates", "warning",
         "pairs of images within a class look almost identical",
         "check whether they show the same subject; the split keeps them in one set"),
        (True, "near_duplicate_label_conflict", "warning",
         "pairs of images look almost identical but have different labels",
         "look at them side by side: a true duplicate needs one label; "
         "a false alarm can be ignored (lower validation.near_duplicate_max_distance)"),
    ):
        selected = pairs[cross == is_cross]
        if not len(selected):
            continue
        listed = [f"{paths[i]} ~ {paths[j]} (distance {d})" for i, j, d in selected[:MAX_PAIRS]]
        findings.append(Finding(
            code, severity, f"{len(selected)} {text} (perceptual-hash distance <= "
            f"{options.near_duplicate_max_distance})", files=listed, count=len(selected),
            hint=hint))
    return findings



def _group_findings(good: pd.DataFrame, group_columns: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    for column in group_columns:
        sizes = good[column].fillna("<missing>").value_counts()
        details = {
            "column": column, "n_groups": int(len(sizes)),
            "min_size": int(sizes.min()) if len(sizes) else 0,
            "median_size": float(sizes.median()) if len(sizes) else 0.0,
            "max_size": int(sizes.max()) if len(sizes) else 0,
            "largest": {str(k): int(v) for k, v in sizes.head(10).items()},
        }
        findings.append(Finding(
            "group_sizes", "info",
            f"column {column!r}: {len(sizes)} groups, sizes {details['min_size']}"
            f"-{details['max_size']} (median {details['median_size']:g})",
            count=int(len(sizes)), details=details))
    return findings


def _describe(values: pd.Series) -> dict[str, float]:
    if values.empty:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(values.min()), "median": float(statistics.median(values)),
            "max": int(values.max())}


def _summary(table: pd.DataFrame, good: pd.DataFrame, listing: SourceListing,
             dropped: list[dict[str, str]]) -> dict[str, Any]:
    counts = good["label"].value_counts().sort_index()
    return {
        "n_listed": int(len(table) + len(listing.rejected)),
        "n_usable": int(len(good)),
        "n_bad": int(table["problem"].notna().sum() + len(listing.rejected)),
        "n_dropped": len(dropped),
        "classes": {str(k): int(v) for k, v in counts.items()},
        "imbalance_ratio": float(counts.max() / counts.min()) if len(counts) else None,
        "modes": {str(k): int(v) for k, v in Counter(good["mode"]).most_common()},
        "formats": {str(k): int(v) for k, v in Counter(good["format"]).most_common()},
        "width": _describe(good["width"]),
        "height": _describe(good["height"]),
    }


def raise_on_errors(result: ValidationResult, report_path: str | None = None) -> None:
    """Stop the pipeline if validation found errors.

    Raises:
        DataValidationError: Naming every error, its files and what to do.
    """
    errors = result.errors
    if not errors:
        return
    blocks = "\n".join(format_finding(f) for f in errors)
    where = f" The full report is in {report_path}." if report_path else ""
    raise DataValidationError(
        f"data validation found {len(errors)} error(s):\n{blocks}\n"
        f"No index was written.{where}")


def render_markdown(result: ValidationResult, title: str = "Data validation") -> str:
    """A readable report of the validation."""
    s = result.summary
    counts = count_by_severity(result.findings)
    lines = [f"# {title}", "",
             f"**{'PASSED' if not result.errors else 'FAILED'}**: "
             f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s).",
             "", "## Summary", "",
             f"- Files listed: {s['n_listed']}; usable images: {s['n_usable']}; "
             f"bad files: {s['n_bad']}; dropped: {s['n_dropped']}",
             f"- Width: {s['width']['min']}-{s['width']['max']} px (median {s['width']['median']:g}); "
             f"height: {s['height']['min']}-{s['height']['max']} px (median {s['height']['median']:g})",
             "- Modes: " + (", ".join(f"{k} {v}" for k, v in s["modes"].items()) or "none"),
             "- Formats: " + (", ".join(f"{k} {v}" for k, v in s["formats"].items()) or "none"),
             ]
    if s["imbalance_ratio"] is not None:
        lines.append(f"- Imbalance ratio (largest / smallest class): {s['imbalance_ratio']:.2f}")
    lines += ["", "| class | images |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in s["classes"].items()]
    lines += ["", "## Findings", ""]
    if not result.findings:
        lines.append("No findings.")
    for f in result.findings:
        lines += [f"### {f.severity.upper()}: `{f.code}`", "", f.message, ""]
        for name in f.files[:20]:
            lines.append(f"- `{name}`")
        if f.count > 20 and f.files:
            lines.append(f"- ... and {f.count - 20} more (see validation.json)")
        if f.hint:
            lines += ["", f"*What to do:* {f.hint}"]
        lines.append("")
    return "\n".join(lines) + "\n"
