"""``python -m imgclf.init DATA``: a starting config written from the data itself.

DATA is a folder (one sub-folder per class) or a CSV manifest (path, label). The
images are validated as the pipeline's data stage would, and a commented config
is written with what the data says:

- the classes and their counts, and the bad files validation would drop;
- an input size from the images' sizes (the median shorter side, rounded to
  the nearest multiple of 32, at most 160 for the pretrained recipe, where the
  HAM10000 benchmark gained from 160 over 128, and 128 for the small CNN);
- the model: EfficientNet-Lite0 pretrained on ImageNet for colour images (the
  recipe of ``config/examples/transfer_learning.yaml``), the small CNN from scratch
  for grayscale ones;
- from the class balance: above an imbalance of :data:`IMBALANCED` (largest over
  smallest class), balanced sampling and a balanced-accuracy target with the
  smallest class's sensitivity; else an accuracy target. The objective follows
  the first target (``docs/objectives.md``);
- the group column from the metadata (``metadata.csv`` beside the images, or
  ``--metadata``): the first column whose name says lesion, patient, slide,
  subject... and whose values repeat, so one of them never straddles two sets.

The targets' thresholds are placeholders marked ``EDIT``: the user sets what
the model must reach. The file is checked by loading it as the workflow would
before it is kept; an existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.io import GRAY_MODES

#: Largest class over smallest class above which the starting config samples the classes evenly.
IMBALANCED = 3.0
#: Metadata column names that identify a group of images (one patient, slide, lesion...).
GROUP_NAMES = re.compile(r"(lesion|patient|slide|subject|case|specimen|donor|animal|individual|study|group)",
                         re.IGNORECASE)
#: The largest input size a starting config picks: for the small CNN from scratch (2-core laptops),
#: and for the pretrained recipe (HAM10000: balanced accuracy 0.67 at 128 px, 0.7+ at 160 px).
MAX_SIZE = 128
MAX_PRETRAINED_SIZE = 160


@dataclass
class DataFacts:
    """What the starting config is decided from."""

    source: str  # folder or manifest
    root: Path
    manifest: Path | None
    metadata: Path | None
    counts: dict[str, int]
    median_side: int
    grayscale: bool
    n_dropped: int
    group_column: str | None
    metadata_columns: list[str] = field(default_factory=list)

    @property
    def imbalance(self) -> float:
        return max(self.counts.values()) / max(1, min(self.counts.values()))


def group_column_of(metadata: pd.DataFrame, file_column: str) -> str | None:
    """The first column that names a group (:data:`GROUP_NAMES`) and whose values repeat, or None."""
    for column in metadata.columns:
        if column == file_column or not GROUP_NAMES.search(str(column)):
            continue
        values = metadata[column].dropna()
        if len(values) and values.nunique() < len(values):
            return str(column)
    return None


def input_size(median_side: int, limit: int = MAX_SIZE) -> int:
    """The median shorter side rounded to a multiple of 32, between 32 and ``limit``."""
    return int(min(limit, max(32, round(median_side / 32) * 32)))


def starting_size(facts: "DataFacts") -> int:
    """The input size of the starting config: :func:`input_size`, up to :data:`MAX_PRETRAINED_SIZE`
    for colour images (the pretrained recipe), :data:`MAX_SIZE` for grayscale ones (the small CNN)."""
    return input_size(facts.median_side, MAX_SIZE if facts.grayscale else MAX_PRETRAINED_SIZE)


def inspect_data(data: Path, metadata: Path | None = None, workers: int = 1) -> DataFacts:
    """Validate the images as the data stage would (bad files dropped and counted) and gather the facts.

    Args:
        data: A folder of class sub-folders, or a CSV manifest.
        metadata: A metadata CSV (default: ``metadata.csv`` beside the images, when present).
        workers: Processes that inspect the images.

    Raises:
        ImgclfError: DATA does not exist, or holds no usable image in two classes.
    """
    from imgclf.core.config import validate_config
    from imgclf.data.index import validate_source

    data = Path(data).expanduser().resolve()
    if not data.exists():
        raise ImgclfError(f"{data} does not exist", "give a folder with one sub-folder per class, or a CSV manifest")
    manifest = data if data.is_file() else None
    root = data.parent if manifest else data
    if metadata is None and (root / "metadata.csv").is_file() and manifest is None:
        metadata = root / "metadata.csv"
    raw: dict[str, Any] = {"data": {"source": "manifest" if manifest else "folder", "root": str(root)},
                           "validation": {"on_bad_file": "drop"}}
    if manifest:
        raw["data"]["manifest"] = str(manifest)
    group, columns = None, []
    if metadata is not None:
        metadata = Path(metadata).expanduser().resolve()
        table = pd.read_csv(metadata)
        file_column = "file"
        if file_column not in table.columns:
            raise ImgclfError(f"{metadata}: no column {file_column!r} naming each image's path under {root}",
                              "add a file column (e.g. nv/ISIC_0024306.jpg), or leave out --metadata")
        group = group_column_of(table, file_column)
        columns = [str(c) for c in table.columns if c not in (file_column, "class", "label")]
        raw["data"]["metadata"] = str(metadata)
        if group:
            raw["data"]["group_columns"] = [group]
    config = validate_config(raw, source="the starting config")
    print(f"imgclf init: validating the images under {root} ...", file=sys.stderr, flush=True)
    result = validate_source(config, root, manifest=manifest, metadata=metadata, workers=workers)
    errors = [f for f in result.findings if f.severity == "error"]
    if errors or result.index.empty:
        message = "; ".join(f.message for f in errors) or "no usable image"
        hints = [f.hint for f in errors if f.hint]
        raise ImgclfError(f"{data}: {message}", "; ".join(hints) or "fix the data first (docs/validation.md)")
    index = result.index
    sides = index[["width", "height"]].min(axis=1)
    return DataFacts(
        source="manifest" if manifest else "folder", root=root, manifest=manifest, metadata=metadata,
        counts={str(k): int(v) for k, v in index["label"].value_counts().sort_index().items()},
        median_side=int(sides.median()), grayscale=bool(index["mode"].isin(GRAY_MODES).all()),
        n_dropped=len(result.dropped), group_column=group, metadata_columns=columns)


def starting_config(facts: DataFacts) -> str:
    """The commented YAML of a starting config for these data."""
    size = starting_size(facts)
    smallest = min(facts.counts, key=facts.counts.get)
    imbalanced = facts.imbalance > IMBALANCED
    classes = ", ".join(f"{name} {count}" for name, count in facts.counts.items())
    lines = [
        "# Starting config written by `python -m imgclf.init` (make config DATA=...) from the data:",
        f"#   {sum(facts.counts.values())} usable images in {len(facts.counts)} classes ({classes});",
        f"#   median shorter side {facts.median_side} px; "
        + ("grayscale" if facts.grayscale else "colour")
        + f"; largest/smallest class {facts.imbalance:.1f}"
        + (f"; {facts.n_dropped} bad file(s) dropped (named in results/data/validation.md)" if facts.n_dropped
           else "") + ".",
        "# Edit the targets (marked EDIT): what the model must reach on the sealed test set.",
        "# Run with:  make run CONFIG=<this file>   (or snakemake --cores all --configfile <this file>;",
        "#            every key: docs/configuration.md; keys not set here take the schema's defaults)",
        "seed: 42",
        "",
        "data:",
        f"  source: {facts.source}",
        f"  root: {facts.root}",
    ]
    if facts.manifest:
        lines.append(f"  manifest: {facts.manifest}")
    if facts.metadata:
        lines.append(f"  metadata: {facts.metadata}")
        if facts.group_column:
            lines.append(f"  group_columns: [{facts.group_column}]   # other columns: "
                         f"{', '.join(c for c in facts.metadata_columns if c != facts.group_column) or 'none'}")
    lines += [f"  image_size: [{size}, {size}]           # from the median shorter side ({facts.median_side} px)", ""]
    lines += ["validation:", "  on_bad_file: drop                # bad files are left out and named in the data report",
              "", "split:", "  test_fraction: 0.2", "  n_folds: 5"]
    if facts.group_column:
        lines.append(f"  group_column: {facts.group_column}   # one {facts.group_column} never straddles two sets")
    else:
        lines.append("  group_column: null               # name a patient/slide/lesion column of data.metadata if "
                     "images of one share a label")
    lines.append("")
    if facts.grayscale:
        lines += ["model:", "  architecture: small_cnn         # grayscale images: a small CNN from scratch", "",
                  "train:", "  epochs: 30", "  early_stopping: {patience: 5}"]
    else:
        lines += ["model:", "  architecture: efficientnet_lite0  # pretrained on ImageNet: the recipe of "
                  "config/examples/transfer_learning.yaml",
                  "  weights: imagenet", "  dropout: 0.2", "",
                  "train:", "  batch_size: 32", "  epochs: 30                       # phase 1 on precomputed "
                  "features: early stopping ends it",
                  "  learning_rate: 0.001"]
        if imbalanced:
            # The HAM10000 benchmark's recipe: fine-tuning peaked within 3 to 6 epochs, then wandered.
            lines += ["  early_stopping: {patience: 4}",
                      "  fine_tune: {enabled: true, unfreeze_layers: 142, epochs: 10, learning_rate: 0.0001}"]
        else:
            lines += ["  early_stopping: {patience: 5}",
                      "  fine_tune: {enabled: true, unfreeze_layers: 142, epochs: 5, learning_rate: 0.0001}"]
    if imbalanced:
        lines.append(f"  sampling: balanced               # largest/smallest class {facts.imbalance:.1f}: each "
                     "epoch draws the classes evenly")
    lines += ["  # augmentation: {flip: horizontal_and_vertical, rotation: 0.5, during: fine_tune}",
              "  #   flips and rotations for images whose orientation means nothing (cells, tissue, lesions:",
              "  #   the HAM10000 benchmark's recipe used them); during: fine_tune keeps phase 1 on",
              "  #   precomputed features",
              "", "explore:", "  studies: []                     # the settings above are a known-good start", "",
              "tune:", "  enabled: false                   # a search space of your own: docs/tune.md", "",
              "final:", "  n_seeds: 3", "", "targets:"]
    if imbalanced:
        lines += ["  - {metric: balanced_accuracy, min: 0.75}    # EDIT; the objective follows this first target",
                  f"  - {{metric: sensitivity, class: {_quoted(smallest)}, min: 0.80}}   # EDIT: the smallest "
                  "class, or the one whose misses cost most"]
    else:
        lines += ["  - {metric: accuracy, min: 0.90}             # EDIT; the objective follows this first target"]
    lines += ["  - {metric: ece, max: 0.05}                  # calibration: confidences that mean what they say",
              "", "export:", "  formats: [float32, int8]", ""]
    return "\n".join(lines)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def check_written(text: str, path: Path, class_names: list[str]) -> None:
    """Load the text as the workflow would (alone over the schema's defaults: a --configfile run
    never reads the demo's config) and run the load-time checks, so the file written is one the
    workflow accepts.

    Raises:
        ImgclfError: The generated config does not validate (a bug: reported, nothing is kept).
    """
    import yaml

    from imgclf.core.config import validate_config
    from imgclf.layout import RunLayout
    from imgclf.pipeline import check_config, check_config_against_classes

    config = validate_config(yaml.safe_load(text), source=str(path))
    check_config(config, test_manifest=str(RunLayout(Path(".")).test_manifest))
    check_config_against_classes(config, class_names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.init", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a folder with one sub-folder per class, or a CSV manifest (path, label)")
    parser.add_argument("--metadata", help="a metadata CSV with a file column (default: metadata.csv beside the images)")
    parser.add_argument("--output", help="where to write the config (default: config/<data folder name>.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--workers", type=int, default=2, help="processes that inspect the images (default 2)")
    args = parser.parse_args(argv)
    try:
        facts = inspect_data(Path(args.data), Path(args.metadata) if args.metadata else None, args.workers)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", (facts.manifest.stem if facts.manifest else facts.root.name))
        output = Path(args.output) if args.output else Path("config") / f"{name}.yaml"
        if output.exists() and not args.force:
            raise ImgclfError(f"{output} exists", "choose another --output, or add --force to replace it")
        text = starting_config(facts)
        check_written(text, output, list(facts.counts))
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(output.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output)
    except ImgclfError as error:
        print(f"imgclf init: {error}", file=sys.stderr)
        return 1
    print(f"imgclf init: wrote {output}: {len(facts.counts)} classes, image_size {starting_size(facts)}, "
          f"{'balanced sampling, ' if facts.imbalance > IMBALANCED else ''}"
          f"group column {facts.group_column or 'none'}. Edit its targets, then: "
          f"make run CONFIG={output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
