"""The deployed model as TFLite files, each measured against the Keras model.

Formats: ``float32`` (the model as trained), ``float16`` (weights stored in half
precision, computed in float32 on a CPU) and ``int8`` (full-integer
post-training quantization of weights and activations, calibrated on a seeded,
class-stratified draw of training images; float32 input and output, so that the
same pixels in [0, 255] feed every format and the Keras model).

For each format: file size and sha256, test accuracy against the Keras model on
the same pixels, agreement of the predicted classes, the largest probability
difference, accuracy per audit group (the bias audit's groups, so that the deltas
line up with the bias audit's), and single-image CPU latency.

Call :func:`imgclf.core.runtime.configure` before the functions that use
TensorFlow (they import it when called).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.runtime import quiet_native_stderr
from imgclf.export.formats import FORMATS

#: A format whose test accuracy drops by more than this against the Keras model is flagged.
MAX_ACCURACY_DROP = 0.01
#: A judged audit group whose accuracy drops by more than this is flagged.
MAX_GROUP_DROP = 0.05
#: Unrecorded inferences before the timed ones.
WARMUP_RUNS = 5


def check_formats(formats: list[str]) -> list[str]:
    """The formats asked for, checked.

    Raises:
        ImgclfError: An unknown format, or none.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ImgclfError(f"export.formats names {unknown or 'no format'}: the export knows "
                          f"{', '.join(FORMATS)}", "list some of float32, float16 and int8 in export.formats")
    return list(formats)


def representative_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded draw of ``n`` rows stratified by class (every row when ``n`` covers them).

    Each class gets its share of ``n`` (largest remainders, ties to the lower class),
    its rows drawn without replacement. The positions come back in manifest order.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    remainder = exact - quota
    for i in sorted(range(len(classes)), key=lambda i: (-remainder[i], i))[: n - quota.sum()]:
        quota[i] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def load_pixels(manifest: Any, image_size: tuple[int, int], channels: int, batch_size: int = 64) -> np.ndarray:
    """The manifest's images as float32 pixels in [0, 255], shape (n, height, width, channels),
    decoded and resized exactly as for training and evaluation (:func:`make_dataset`)."""
    from imgclf.training.inputs import make_dataset

    data = make_dataset(manifest, tuple(image_size), channels, batch_size, training=False, seed=0, cache=False)
    batches = [x.numpy() for x, _ in data]
    if not batches:
        return np.zeros((0, *image_size, channels), np.float32)
    return np.concatenate(batches).astype(np.float32)


@contextmanager
def saved_model(model: Any) -> Iterator[str]:
    """The Keras model exported as a TensorFlow SavedModel in a temporary folder (the
    converter's input), removed afterwards.

    Raises:
        ImgclfError: The model cannot be exported.
    """
    with tempfile.TemporaryDirectory(prefix="imgclf-export-") as folder:
        path = os.path.join(folder, "saved_model")
        try:
            model.export(path, format="tf_saved_model", verbose=False)
        except Exception as exc:  # noqa: BLE001 (TensorFlow raises many kinds)
            raise ImgclfError(f"the deployed model cannot be exported as a SavedModel for TFLite: "
                              f"{type(exc).__name__}: {exc}",
                              "set export.enabled: false to skip the TFLite export") from None
        yield path


def convert(saved_model_dir: str, fmt: str, representative: np.ndarray | None = None) -> bytes:
    """One TFLite flatbuffer of the SavedModel.

    Args:
        saved_model_dir: From :func:`saved_model`.
        fmt: ``float32``, ``float16`` or ``int8``.
        representative: float32 images (n, h, w, c) that calibrate int8's activation ranges.

    Raises:
        ImgclfError: Unknown format, int8 without representative images, or a failed
            conversion (naming the format and what to do).
    """
    import tensorflow as tf

    check_formats([fmt])
    if fmt == "int8" and (representative is None or not len(representative)):
        raise ImgclfError("the int8 conversion needs representative images, and none was given",
                          "set export.representative_images to at least 1 (default 200)")
    hint = ("remove int8 from export.formats (some layers have no integer kernel), or keep float16"
            if fmt == "int8" else f"remove {fmt} from export.formats, or set export.enabled: false")
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    except Exception as exc:  # noqa: BLE001 (TensorFlow raises many kinds)
        raise ImgclfError(f"the {fmt} TFLite conversion failed: {saved_model_dir} cannot be read as a SavedModel: "
                          f"{type(exc).__name__}: {str(exc).strip()[:500]}", hint) from None
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "int8":
        images = np.asarray(representative, np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([images[i:i + 1]] for i in range(len(images)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    try:
        # The converter prints its MLIR settings from C++; they stay out of the console.
        with quiet_native_stderr():
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 (the converter raises many kinds)
        raise ImgclfError(f"the {fmt} TFLite conversion failed: {type(exc).__name__}: "
                          f"{str(exc).strip()[:2000]}", hint) from None


def interpreter(content: bytes, threads: int = 1) -> Any:
    """A ready TFLite interpreter (TensorFlow's ``tf.lite.Interpreter``; its successor, LiteRT's
    ``ai_edge_litert``, is not in the pinned environment).

    Raises:
        ImgclfError: The bytes are not a TFLite model.
    """
    import tensorflow as tf

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            runner = tf.lite.Interpreter(model_content=content, num_threads=threads)
        runner.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ImgclfError(f"not a usable TFLite model: {exc}", "convert it again (rerun export_model)") from None
    return runner


def _runner(content: bytes, threads: int, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    runner = interpreter(content, threads)
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    expected = tuple(int(s) for s in source["shape"][1:])
    if tuple(shape) != expected:
        raise ImgclfError(f"the TFLite model takes images of shape {expected}, the images are {tuple(shape)}",
                          "convert the model again from the deployed model.keras")

    def run(image: np.ndarray) -> np.ndarray:
        runner.set_tensor(source["index"], image)
        runner.invoke()
        return runner.get_tensor(target["index"])

    return run


def tflite_proba(content: bytes, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Class probabilities of every image (one inference each), float64, rows summing to 1."""
    run = _runner(content, threads, images.shape[1:])
    if not len(images):
        return np.zeros((0, 0))
    proba = np.concatenate([run(images[i:i + 1]) for i in range(len(images))]).astype(np.float64)
    return proba / proba.sum(axis=1, keepdims=True)


def keras_proba(model: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The Keras model's class probabilities on the same pixels, float64, rows summing to 1."""
    proba = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)
    return proba / proba.sum(axis=1, keepdims=True)


def time_calls(call: Callable[[], Any], runs: int, warmup: int = WARMUP_RUNS) -> dict[str, Any]:
    """Wall time of ``runs`` calls after ``warmup`` unrecorded ones: median and 90th percentile in ms."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)), "runs": runs,
            "warmup": warmup}


def tflite_latency(content: bytes, image: np.ndarray, threads: int, runs: int) -> dict[str, Any]:
    """Single-image latency of a TFLite model on the CPU (set input, invoke, read output)."""
    run = _runner(content, threads, image.shape[1:])
    return time_calls(lambda: run(image), runs)


def keras_latency(model: Any, image: np.ndarray, runs: int) -> dict[str, Any]:
    """Single-image latency of the Keras model, ``model(x, training=False)``, for comparison."""
    return time_calls(lambda: np.asarray(model(image, training=False)), runs)


def compare_predictions(labels: np.ndarray, reference: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """A format's test figures against the Keras model's on the same images.

    Returns:
        ``n``, ``accuracy``, ``keras_accuracy``, ``delta`` (accuracy minus Keras's; negative:
        a loss), ``agreement_with_keras`` (share of identical predicted classes),
        ``n_changed`` and ``max_abs_probability_diff``.
    """
    labels = np.asarray(labels)
    predicted, keras_predicted = proba.argmax(axis=1), reference.argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    keras_accuracy = float((keras_predicted == labels).mean())
    return {"n": len(labels), "accuracy": accuracy, "keras_accuracy": keras_accuracy,
            "delta": accuracy - keras_accuracy,
            "agreement_with_keras": float((predicted == keras_predicted).mean()),
            "n_changed": int((predicted != keras_predicted).sum()),
            "max_abs_probability_diff": float(np.abs(proba - reference).max()) if len(labels) else 0.0}


def audit_groups(index: pd.DataFrame, paths: pd.Series, reference_paths: pd.Series,
                settings: dict[str, Any]) -> pd.DataFrame:
    """The bias audit's group of each test image, one column per audited column, in the order of
    ``paths``: the same groups as ``audit_models`` (metadata columns binned, image slices cut at
    the tertiles of the reference training manifest, fold 0's as in the audit).

    Args:
        settings: ``audit`` (group_columns, numeric_bins, default_bins, image_slices),
            ``data`` (group_columns) and ``split`` (group_column).
    """
    from imgclf.audit import audit_group_table

    table = audit_group_table(index, reference_paths, settings)
    missing = sorted(set(paths) - set(table.index))
    if missing:
        raise ImgclfError(f"{len(missing)} test images are not in the index (first: {missing[0]})",
                          "rerun validation and the split: the index and the test manifest disagree")
    return table.loc[list(paths)].reset_index(drop=True)


def group_deltas(labels: np.ndarray, reference: np.ndarray, proba: np.ndarray, groups: pd.DataFrame,
                 min_group_size: int) -> list[dict[str, Any]]:
    """Keras and TFLite accuracy per audit group.

    Args:
        groups: One column per audited column, one row per image (as :func:`audit_groups`).
        min_group_size: ``audit.min_group_size``: smaller groups are listed, not judged.

    Returns:
        One dict per (column, group): ``column``, ``group``, ``n``, ``judged``,
        ``keras_accuracy``, ``accuracy``, ``delta``.
    """
    labels = np.asarray(labels)
    right = proba.argmax(axis=1) == labels
    keras_right = reference.argmax(axis=1) == labels
    rows = []
    for column in groups.columns:
        values = groups[column].astype(str).to_numpy()
        for level in sorted(set(values)):
            mask = values == level
            accuracy, keras_accuracy = float(right[mask].mean()), float(keras_right[mask].mean())
            rows.append({"column": column, "group": level, "n": int(mask.sum()),
                         "judged": bool(mask.sum() >= min_group_size), "keras_accuracy": keras_accuracy,
                         "accuracy": accuracy, "delta": accuracy - keras_accuracy})
    return rows


def export_findings(formats: dict[str, dict[str, Any]], max_drop: float = MAX_ACCURACY_DROP,
                    max_group_drop: float = MAX_GROUP_DROP) -> list[dict[str, str]]:
    """Warnings for a format whose test accuracy drops by more than ``max_drop`` against the
    Keras model, and for a judged group whose accuracy drops by more than ``max_group_drop``."""
    findings = []
    for fmt, entry in formats.items():
        if -entry["delta"] > max_drop:
            findings.append({"severity": "warning", "format": fmt, "column": "",
                             "message": f"{fmt}: test accuracy drops by {-entry['delta']:.4f} against the Keras "
                                        f"model ({entry['keras_accuracy']:.4f} -> {entry['accuracy']:.4f}), "
                                        f"more than {max_drop}"})
        for group in entry["per_group"]:
            if group["judged"] and -group["delta"] > max_group_drop:
                findings.append({"severity": "warning", "format": fmt, "column": group["column"],
                                 "message": f"{fmt}: accuracy of {group['column']} = {group['group']!r} "
                                            f"({group['n']} test images) drops by {-group['delta']:.4f} "
                                            f"({group['keras_accuracy']:.4f} -> {group['accuracy']:.4f}), "
                                            f"more than {max_group_drop}"})
    return findings


def export_formats(model: Any, formats: list[str], representative: np.ndarray, images: np.ndarray,
                   labels: np.ndarray, groups: pd.DataFrame, min_group_size: int, threads: int = 1,
                   latency_runs: int = 50, log: Any = None,
                   reference: np.ndarray | None = None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Convert the model to every format and measure each against the Keras model.

    Args:
        model: The Keras model (float32 input in [0, 255]).
        formats: Checked by :func:`check_formats`.
        representative: Training images calibrating int8 (unused by the float formats).
        images: The test images, float32 (n, h, w, c), the same pixels for every model.
        labels: Their class indices.
        groups: Their audit groups (:func:`audit_groups`).
        min_group_size: Groups smaller than this are not judged.
        threads: TFLite interpreter threads.
        latency_runs: Timed single-image inferences per model.
        log: A logger for progress (optional).
        reference: The Keras model's probabilities on ``images`` when already computed.

    Returns:
        The TFLite bytes per format, and ``{"keras": {accuracy, latency_ms}, "formats": {format:
        {bytes, sha256, conversion_seconds, latency_ms, per_group, and compare_predictions's
        figures}}, "findings": [...]}``.
    """
    import hashlib

    formats = check_formats(formats)
    reference = keras_proba(model, images) if reference is None else reference
    one = images[:1]
    keras = {"accuracy": float((reference.argmax(axis=1) == np.asarray(labels)).mean()),
             "latency_ms": keras_latency(model, one, latency_runs)}
    contents: dict[str, bytes] = {}
    results: dict[str, dict[str, Any]] = {}
    with saved_model(model) as folder:
        for fmt in formats:
            started = time.monotonic()
            content = convert(folder, fmt, representative if fmt == "int8" else None)
            seconds = time.monotonic() - started
            proba = tflite_proba(content, images, threads)
            entry = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                     "conversion_seconds": seconds, **compare_predictions(labels, reference, proba),
                     "latency_ms": tflite_latency(content, one, threads, latency_runs),
                     "per_group": group_deltas(labels, reference, proba, groups, min_group_size)}
            contents[fmt], results[fmt] = content, entry
            if log is not None:
                log.info("%s: %d bytes in %.1f s; accuracy %.4f (Keras %.4f, delta %+.4f), agreement %.4f, "
                         "max |dp| %.2g; latency median %.3f ms, p90 %.3f ms", fmt, entry["bytes"], seconds,
                         entry["accuracy"], entry["keras_accuracy"], entry["delta"], entry["agreement_with_keras"],
                         entry["max_abs_probability_diff"], entry["latency_ms"]["median"], entry["latency_ms"]["p90"])
    return contents, {"keras": keras, "formats": results, "findings": export_findings(results)}


def member_figures(member: Any, image: np.ndarray, threads: int, runs: int) -> dict[str, Any]:
    """Size and latency of one member of a deployed ensemble (its float32 TFLite file and Keras
    model), what the ensemble's cost is compared with."""
    with saved_model(member) as folder:
        content = convert(folder, "float32")
    return {"name": member.name, "float32_bytes": len(content),
            "float32_latency_ms": tflite_latency(content, image, threads, runs),
            "keras_latency_ms": keras_latency(member, image, runs)}


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def export_markdown(result: dict[str, Any]) -> str:
    """The export as Markdown: findings, one row per format against Keras, per-group deltas."""
    keras = result["keras"]
    formats = result["formats"]
    latency = result["latency"]
    lines = ["# TFLite export of the deployed model", "",
             f"Deployed {'seed ' + str(result['seed']) if result['seed'] is not None else 'ensemble'} "
             f"(fold {result['fold']}); {result['n_test']} test images; "
             f"int8 calibrated on {result['representative']['n']} training images (seeded draw, stratified by "
             f"class). Latency: one image at a time on the CPU ({latency['cpu']}), {latency['threads']} "
             f"thread(s), {latency['warmup']} warm-up then {latency['runs']} timed runs; jobs running beside "
             "this one slow it down.", "", "## Findings", ""]
    lines += [f"- **{f['severity']}**: {f['message']}" for f in result["findings"]] or [
        f"No format loses more than {result['thresholds']['max_accuracy_drop']} of test accuracy, and no "
        f"judged group more than {result['thresholds']['max_group_drop']}."]
    lines += ["", "| model | size (KiB) | accuracy | delta vs Keras | agreement with Keras | max abs prob. diff | "
              "latency median (ms) | p90 (ms) |", "|---|---|---|---|---|---|---|---|",
              f"| Keras (model.keras) | {_kb(keras['bytes'])} | {keras['accuracy']:.4f} | - | - | - | "
              f"{keras['latency_ms']['median']:.3f} | {keras['latency_ms']['p90']:.3f} |"]
    for fmt, e in formats.items():
        flag = " (!)" if -e["delta"] > result["thresholds"]["max_accuracy_drop"] else ""
        lines.append(f"| TFLite {fmt} | {_kb(e['bytes'])} | {e['accuracy']:.4f} | {e['delta']:+.4f}{flag} | "
                     f"{e['agreement_with_keras']:.4f} | {e['max_abs_probability_diff']:.2g} | "
                     f"{e['latency_ms']['median']:.3f} | {e['latency_ms']['p90']:.3f} |")
    member = result.get("ensemble_member")
    if member:
        lines += ["", f"The deployed model is an ensemble of {result['ensemble_of']} models; one of them alone "
                  f"({member['name']}): float32 TFLite {_kb(member['float32_bytes'])} KiB, latency median "
                  f"{member['float32_latency_ms']['median']:.3f} ms (Keras {member['keras_latency_ms']['median']:.3f} ms)."]
    names = list(formats)
    if names and formats[names[0]]["per_group"]:
        lines += ["", "## Accuracy per audit group (delta against Keras)", "",
                  f"Groups with fewer than {result['thresholds']['min_group_size']} test images are not judged "
                  "(marked *).", "",
                  "| column | group | n | Keras | " + " | ".join(names) + " |",
                  "|---|---|---|---|" + "---|" * len(names)]
        for i, g in enumerate(formats[names[0]]["per_group"]):
            cells = []
            for fmt in names:
                d = formats[fmt]["per_group"][i]["delta"]
                flag = " (!)" if g["judged"] and -d > result["thresholds"]["max_group_drop"] else ""
                cells.append(f"{d:+.4f}{flag}")
            star = "" if g["judged"] else "*"
            lines.append(f"| {g['column']} | {g['group']}{star} | {g['n']} | {g['keras_accuracy']:.4f} | "
                         + " | ".join(cells) + " |")
    lines += ["", "## Files", "", "| file | bytes | sha256 | conversion (s) |", "|---|---|---|---|"]
    lines += [f"| {e['file']} | {e['bytes']} | `{e['sha256']}` | {e['conversion_seconds']:.1f} |"
              for e in formats.values()]
    return "\n".join(lines) + "\n"


def export_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What ``export_model`` reads of the config (its ``params``): a change elsewhere (targets,
    the model card's text, audit thresholds) does not convert the model again.

    Returns:
        ``seed``, ``formats``, ``representative_images``, ``latency_runs``, ``threads``, and
        ``groups``: the bias audit's group settings (so that the per-group deltas line up with
        its groups) in the shape :func:`imgclf.audit.groups.audit_columns` reads.
    """
    from imgclf.audit import audit_settings

    export = config["export"]
    groups = audit_settings(config)
    audit = groups["audit"]
    return {
        "seed": config["seed"],
        "formats": list(export["formats"]),
        **{key: export[key] for key in ("representative_images", "latency_runs", "threads")},
        "groups": {**groups,
                   "audit": {key: audit[key] for key in ("group_columns", "numeric_bins", "default_bins",
                                                         "image_slices", "min_group_size")},
                   "data": {"group_columns": config["data"]["group_columns"]}},
    }
