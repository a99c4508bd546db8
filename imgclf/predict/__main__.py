"""Predict the classes of new images without Snakemake: ``python -m imgclf.predict IMAGES``.

IMAGES is a folder (flat, or one sub-folder per class: the accuracy is then reported) or a CSV
manifest. The model is a run's deployed model by default (``--model ensemble``, ``float32``,
``float16``, ``int8``, or the path of a ``.keras`` / ``.tflite`` file with ``--card``). Writes
``<results>/predict/<name>/predictions.csv`` and ``predict.json`` as ``snakemake predict`` does.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from imgclf.core.errors import ImgclfError


def _model_and_card(model: str, card: str | None, results: Path) -> tuple[Path, Path, str]:
    from imgclf.predict.predictions import MODEL_KINDS, model_files

    if model in MODEL_KINDS:
        files = model_files(model)
        return (results / Path(files["model"]).relative_to("results"),
                Path(card) if card else results / Path(files["card"]).relative_to("results"), model)
    path = Path(model)
    if path.suffix not in (".keras", ".tflite"):
        raise ImgclfError(f"--model {model}: neither one of {', '.join(MODEL_KINDS)} nor a .keras or .tflite file",
                          "name a model kind, or the path of a model file with --card its model.json")
    if card is None:
        raise ImgclfError(f"--model {model} is a file: its classes and input size are in a model card",
                          "add --card path/to/model.json (results/evaluate/deployed/model.json for the deployed "
                          "model and its TFLite files)")
    return path, Path(card), "tflite" if path.suffix == ".tflite" else "keras"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", help="a folder of images (flat, or one sub-folder per class) or a CSV manifest")
    parser.add_argument("--name", help="the batch's name (default: the folder's or manifest's name)")
    parser.add_argument("--model", default="deployed",
                        help="deployed (default), ensemble, float32, float16, int8, or a .keras/.tflite file")
    parser.add_argument("--card", help="the model's model.json (default: the one of the chosen model kind)")
    parser.add_argument("--results", default="results", help="the run's results folder (default: %(default)s)")
    parser.add_argument("--output", help="the predictions CSV (default: <results>/predict/<name>/predictions.csv)")
    parser.add_argument("--path-column", default="path", help="a manifest's path column (default: %(default)s)")
    parser.add_argument("--root", help="the folder a manifest's paths are relative to (default: its folder)")
    parser.add_argument("--on-bad-file", choices=["fail", "drop"], default="fail",
                        help="stop at an unusable file (default), or leave it out")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--chunk-images", type=int, default=1024,
                        help="images predicted and written at a time (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow's threads (default: %(default)s)")
    args = parser.parse_args(argv)
    source = Path(args.images)
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem if source.is_file() else source.resolve().name)
    output = Path(args.output) if args.output else Path(args.results) / "predict" / name / "predictions.csv"
    from imgclf.core.io import csv_appender, write_json
    from imgclf.core.job import JobResources, get_logger
    from imgclf.predict.tf_jobs import predict_batch

    log = get_logger("predict")
    batch = {"path": str(source), "path_column": args.path_column, **({"root": args.root} if args.root else {})}
    try:
        model, card, kind = _model_and_card(args.model, args.card, Path(args.results))
        with csv_appender(output) as write_rows:
            summary = predict_batch(name, batch, model, card, kind,
                                    {"batch_size": args.batch_size, "chunk_images": args.chunk_images},
                                    {"on_bad_file": args.on_bad_file}, JobResources(args.threads, args.threads),
                                    0, write_rows, log)
        write_json(output.with_name("predict.json"), summary)
    except ImgclfError as error:
        print(f"imgclf predict: {error}", file=sys.stderr)
        return 1
    print(f"imgclf predict: {summary['n_images']} images -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
