"""Validation throughput (images/s) at 1x and 2x the images.

Run: make benchmark   (or: python benchmarks/validation_throughput.py [--workers N])

For each data set it times the whole validation (listing, sha256, full
decode, perceptual hash, duplicate and near-duplicate search, all checks) on
the images as they are (1x) and on a folder holding every image twice (2x:
a second, re-encoded copy of each file with one pixel changed, so that the
copies are distinct files of the same kind, not byte-identical ones). The
ratio t(2x)/t(1x) shows whether the cost is linear (2.0).

Data: the embedded digits (exported here to a temporary folder) and
../shared/data/ham10000 (6,009 JPEG) when present. Figures go to stdout and
benchmarks/results/validation_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.data.index import validate_source  # noqa: E402
from imgclf.data.digits import digit_images  # noqa: E402


def export_digits(target: Path) -> Path:
    for relpath, image in digit_images(32):
        (target / relpath).parent.mkdir(parents=True, exist_ok=True)
        image.save(target / relpath)
    return target


def doubled(source: Path, target: Path) -> Path:
    """Every image of ``source`` twice: as is, and re-encoded with one pixel changed."""
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        rel = path.relative_to(source)
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / rel)
        with Image.open(path) as image:
            image = image.copy()
        image.putpixel((0, 0), 0 if image.mode == "L" else (0,) * len(image.getbands()))
        image.save(target / rel.with_name(f"copy_{rel.name}"))
    return target


def time_validation(root: Path, workers: int, repeats: int) -> tuple[float, int]:
    config = validate_config({"data": {"source": "folder", "root": str(root), "image_size": [8, 8]},
                              "validation": {"on_bad_file": "drop", "min_images_per_class": 1}})
    best = float("inf")
    n = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = validate_source(config, root, workers=workers)
        best = min(best, time.perf_counter() - started)
        n = result.summary["n_listed"]
    return best, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        datasets = {"digits (PNG 32x32)": export_digits(tmp / "digits")}
        ham = REPO.parent / "shared" / "data" / "ham10000"
        if ham.is_dir():
            datasets["ham10000 (JPEG 200x150)"] = ham
        else:
            print(f"note: {ham} is absent; only the digits are measured")
        for name, root in datasets.items():
            double = doubled(root, tmp / f"{root.name}_2x")
            # Warm the page cache so both sizes are timed on the same footing.
            for folder in (root, double):
                for path in folder.rglob("*"):
                    if path.is_file():
                        path.read_bytes()
            t1, n1 = time_validation(root, args.workers, args.repeats)
            t2, n2 = time_validation(double, args.workers, args.repeats)
            row = {"dataset": name, "workers": args.workers,
                   "images_1x": n1, "seconds_1x": round(t1, 3), "images_per_s_1x": round(n1 / t1),
                   "images_2x": n2, "seconds_2x": round(t2, 3), "images_per_s_2x": round(n2 / t2),
                   "time_ratio_2x_over_1x": round(t2 / t1, 2)}
            results.append(row)
            print(f"{name:26s} workers={args.workers}  1x: {n1:6d} images {t1:6.2f} s "
                  f"{n1 / t1:7.0f} img/s | 2x: {n2:6d} images {t2:6.2f} s {n2 / t2:7.0f} img/s "
                  f"| t(2x)/t(1x) = {t2 / t1:.2f}")
    out = REPO / "benchmarks" / "results" / "validation_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
