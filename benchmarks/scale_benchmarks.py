"""Scale benchmark (issue 18): validation, split and the input pipeline at 1x, 4x and 16x of
HAM10000's size, and a training job's throughput at 1 and 2 threads.

Run: make benchmark-scale   (or: python benchmarks/scale_benchmarks.py [--scales 1 4 16] [--keep])

A synthetic data set of HAM10000's size (10,015 images; its seven classes in its proportions,
one to three images per lesion, a metadata.csv with lesion_id) is generated at each scale as
small PNG images (32x32, each distinct: pixel noise over a class colour), under
benchmarks/results/scale/ (removed afterwards unless --keep). At each scale, each step runs in a
process of its own, timed, with its peak resident memory:

- validation: the whole of it (listing, sha256, decode, pHash, duplicates, every check), 2 workers;
- split: grouped by lesion_id, 5 folds and a test set;
- one epoch of the input pipeline: fold 0's training manifest read (every file's sha256
  checked, as a training job does) and one pass of the dataset a training job builds
  (decode, resize to 32x32, cache as train.cache: auto decides, shuffle, batch 32).

Printed: seconds, images/s, peak memory, and per image, for each step and scale, with the ratio
of 16x to 1x per image (the target: within 1.3x, i.e. flat or falling). Then the training
throughput (images/s, the second of two epochs, small CNN at 32x32, batch 32) of one job on the
1x data with 1 intra-op thread on 1 CPU, 1 intra-op thread with the input pipeline on 2 CPUs
(what a profile's set-threads gives), and 2 intra-op threads on 2 CPUs; the three settings
alternate twice and each one's best is kept (the machine is shared). And the input pipeline
alone, uncached (what feeds a GPU in a first epoch or under train.cache: none), on 1 and 2
input threads. Written to
benchmarks/results/scale_benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results"

HAM10000_IMAGES = 10_015
#: Rounds of the throughput measures: this machine is shared, so each setting's best is kept.
THROUGHPUT_ROUNDS = 2
#: HAM10000's classes and their shares.
CLASS_SHARES = {"nv": 0.669, "mel": 0.111, "bkl": 0.110, "bcc": 0.051, "akiec": 0.033, "vasc": 0.014, "df": 0.012}
SIDE = 32


def generate(root: Path, n_images: int, seed: int = 0) -> None:
    """``n_images`` distinct PNG images in one folder per class, and a metadata.csv (lesion_id)."""
    import numpy as np
    from PIL import Image

    marker = root / "complete.json"
    if marker.is_file() and json.loads(marker.read_text()).get("images") == n_images:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    names = list(CLASS_SHARES)
    counts = [int(round(share * n_images)) for share in CLASS_SHARES.values()]
    counts[0] += n_images - sum(counts)
    rows, lesion = ["file,lesion_id"], 0
    for index, (name, count) in enumerate(zip(names, counts)):
        (root / name).mkdir(parents=True)
        colour = np.array([(37 * index) % 256, (91 * index) % 256, (151 * index) % 256], dtype=np.int16)
        left_in_lesion = 0
        for i in range(count):
            noise = rng.integers(-60, 60, size=(SIDE, SIDE, 3), dtype=np.int16)
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            relpath = f"{name}/img_{i:06d}.png"
            Image.fromarray(pixels).save(root / relpath, compress_level=1)
            if left_in_lesion == 0:
                lesion, left_in_lesion = lesion + 1, int(rng.integers(1, 4))
            left_in_lesion -= 1
            rows.append(f"{relpath},L{lesion:06d}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    marker.write_text(json.dumps({"images": n_images}))


def _config(root: Path) -> dict:
    from imgclf.core.config import validate_config

    return validate_config({"seed": 42, "data": {"source": "folder", "root": str(root), "image_size": [SIDE, SIDE],
                                                 "metadata": str(root / "metadata.csv"),
                                                 "group_columns": ["lesion_id"]},
                            "split": {"n_folds": 5, "test_fraction": 0.2, "group_column": "lesion_id"}})


def step_validate(root: Path, work: Path) -> dict:
    from imgclf.core.io import write_csv
    from imgclf.data.index import validate_source

    config = _config(root)
    started = time.perf_counter()
    result = validate_source(config, root, metadata=str(root / "metadata.csv"), workers=2)
    seconds = time.perf_counter() - started
    write_csv(work / "index.csv", result.index)
    return {"seconds": seconds, "images": len(result.index)}


def step_split(root: Path, work: Path) -> dict:
    from imgclf.core.io import read_index, write_csv
    from imgclf.split.folds import SplitOptions, make_split

    index = read_index(work / "index.csv")
    started = time.perf_counter()
    made = make_split(index, SplitOptions.from_config(_config(root)))
    seconds = time.perf_counter() - started
    write_csv(work / "train.csv", made.folds[0][0])
    write_csv(work / "val.csv", made.folds[0][1])
    return {"seconds": seconds, "images": len(index), "train": len(made.folds[0][0])}


def step_epoch(root: Path, work: Path) -> dict:
    from imgclf.core import runtime

    runtime.configure(0, 1, 2)
    from imgclf.core.config import validate_config
    from imgclf.core.io import read_index
    from imgclf.training.cache import job_cache, resolve_cache
    from imgclf.training.inputs import make_dataset, read_manifest

    classes = sorted(read_index(work / "index.csv")["label"].unique())
    started = time.perf_counter()
    manifest = read_manifest(work / "train.csv", root, classes)  # every file's sha256 checked
    checked = time.perf_counter() - started
    train = validate_config({})["train"]
    plan = resolve_cache(train, len(manifest.paths), (SIDE, SIDE), 3, None)
    with job_cache(plan) as cache:
        data = make_dataset(manifest, (SIDE, SIDE), 3, 32, True, 0, cache=cache)
        seen = sum(int(labels.shape[0]) for _, labels in data)
    seconds = time.perf_counter() - started
    assert seen == len(manifest.paths)
    return {"seconds": seconds, "images": seen, "manifest_check_seconds": checked, "cache": plan.mode}


def step_decode(root: Path, work: Path, threads: int) -> dict:
    """One uncached pass of the input pipeline (decode, resize, batch) on ``threads`` input threads."""
    from imgclf.core import runtime

    runtime.configure(0, 1, 1 + threads)  # 1 intra-op thread, the rest for the input pipeline
    from imgclf.core.io import read_index
    from imgclf.training.inputs import make_dataset, read_manifest

    classes = sorted(read_index(work / "index.csv")["label"].unique())
    manifest = read_manifest(work / "train.csv", root, classes, verify=False)
    data = make_dataset(manifest, (SIDE, SIDE), 3, 32, True, 0, cache=False)
    started = time.perf_counter()
    seen = sum(int(labels.shape[0]) for _, labels in data)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": seen, "images_per_s": seen / seconds, "input_threads": threads}


def step_throughput(root: Path, work: Path, threads: int, cpus: int) -> dict:
    from imgclf.core import runtime

    runtime.configure(0, threads, cpus)
    import keras

    from imgclf.core.io import read_index
    from imgclf.training.inputs import make_dataset, read_manifest
    from imgclf.training.loop import compile_model
    from imgclf.core.config import validate_config
    from imgclf.training.models import build_model

    classes = sorted(read_index(work / "index.csv")["label"].unique())
    manifest = read_manifest(work / "train.csv", root, classes, verify=False)
    config = validate_config({})
    data = make_dataset(manifest, (SIDE, SIDE), 3, 32, True, 0)
    model = build_model(config["model"], len(classes), (SIDE, SIDE, 3))
    compile_model(model, config["train"], 0.001)
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(data, epochs=2, verbose=0, callbacks=[Timer()])
    return {"seconds": times[-1], "images": len(manifest.paths), "images_per_s": len(manifest.paths) / times[-1]}


STEPS = {"validate": step_validate, "split": step_split, "epoch": step_epoch}


def run_child(*args: str) -> dict:
    """Run one step in a process of its own: its result, wall time and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"step {args} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_seconds=wall, peak_rss_mb=usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--keep", action="store_true", help="keep the generated images")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, root, work, *more = args.child
        function = {"throughput": step_throughput, "decode": step_decode}.get(step) or STEPS[step]
        print(json.dumps(function(Path(root), Path(work), *map(int, more))))
        return
    base = OUT / "scale"
    report: dict = {"scales": {}, "throughput": {}}
    try:
        for scale in args.scales:
            n_images = HAM10000_IMAGES * scale
            root, work = base / f"images_{scale}x", base / f"work_{scale}x"
            work.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            generate(root, n_images, seed=scale)
            print(f"== {scale}x: {n_images:,} images generated in {time.perf_counter() - started:.0f} s", flush=True)
            steps = {}
            for step in STEPS:
                result = run_child(step, str(root), str(work))
                result["seconds_per_1000"] = 1000 * result["seconds"] / result["images"]
                result["peak_kb_per_image"] = 1024 * result["peak_rss_mb"] / result["images"]
                steps[step] = result
                print(f"   {step:<9} {result['images']:>8,} images  {result['seconds']:7.1f} s  "
                      f"{result['images'] / result['seconds']:8,.0f} img/s  peak {result['peak_rss_mb']:7,.0f} MB  "
                      f"{result['peak_kb_per_image']:6.1f} KB/image"
                      + (f"  (cache: {result['cache']})" if "cache" in result else ""), flush=True)
            report["scales"][scale] = {"images": n_images, "steps": steps}
            (OUT / "scale_benchmarks.json").write_text(json.dumps(report, indent=2))
        first, last = min(args.scales), max(args.scales)
        if first != last:
            print(f"\nper image, {last}x against {first}x (target: at most 1.3):")
            ratios = {}
            for step in STEPS:
                a, b = report["scales"][first]["steps"][step], report["scales"][last]["steps"][step]
                ratios[step] = {"time": b["seconds_per_1000"] / a["seconds_per_1000"],
                                "memory": b["peak_kb_per_image"] / a["peak_kb_per_image"],
                                "marginal_kb_per_image": 1024 * (b["peak_rss_mb"] - a["peak_rss_mb"])
                                / (b["images"] - a["images"])}
                print(f"   {step:<9} time {ratios[step]['time']:.2f}x, peak memory {ratios[step]['memory']:.2f}x "
                      f"(each added image: {ratios[step]['marginal_kb_per_image']:.1f} KB)")
            report["ratios"] = ratios
        root, work = base / f"images_{first}x", base / f"work_{first}x"
        print(f"\ntraining throughput, small CNN {SIDE}x{SIDE}, batch 32, {first}x data, second epoch "
              f"(the settings alternated {THROUGHPUT_ROUNDS} times, each one's best kept):")
        settings = ((1, 1), (1, 2), (2, 2))
        for _ in range(THROUGHPUT_ROUNDS):
            for threads, cpus in settings:
                result = run_child("throughput", str(root), str(work), str(threads), str(cpus))
                key = f"{threads}_intra_op_{cpus}_cpus"
                best = report["throughput"].get(key)
                if best is None or result["images_per_s"] > best["images_per_s"]:
                    report["throughput"][key] = result
        for threads, cpus in settings:
            result = report["throughput"][f"{threads}_intra_op_{cpus}_cpus"]
            print(f"   {threads} intra-op thread(s) on {cpus} CPU(s) (input threads: {max(1, cpus - threads)}): "
                  f"{result['images_per_s']:,.0f} images/s ({result['seconds']:.1f} s for {result['images']:,})",
                  flush=True)
        print(f"\ninput pipeline alone, uncached (decode, resize, batch), {first}x data, best of "
              f"{THROUGHPUT_ROUNDS} alternated:")
        report["decode"] = {}
        for _ in range(THROUGHPUT_ROUNDS):
            for threads in (1, 2):
                result = run_child("decode", str(root), str(work), str(threads))
                best = report["decode"].get(str(threads))
                if best is None or result["images_per_s"] > best["images_per_s"]:
                    report["decode"][str(threads)] = result
        for threads in (1, 2):
            result = report["decode"][str(threads)]
            print(f"   {threads} input thread(s): {result['images_per_s']:,.0f} images/s", flush=True)
        (OUT / "scale_benchmarks.json").write_text(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            for scale in args.scales:
                shutil.rmtree(base / f"images_{scale}x", ignore_errors=True)


if __name__ == "__main__":
    main()
