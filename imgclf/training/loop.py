"""The training loop: optimizers, callbacks, two-phase transfer learning,
epoch-level resume, divergence detection, weight tracking.

Resume: at the end of every epoch the whole model (weights and optimizer
state) and the state of every callback (early stopping, learning-rate
reduction, best checkpoint, history, weight samples) are saved to a resume
folder, atomically. A rerun with the same settings continues from the last
finished epoch, in whichever phase it was; a rerun with other settings
starts afresh. The folder is removed when the run completes.

The state's ``state.json`` records the sha256 of every other file of the
folder, and is written last: a state whose files are missing, truncated or
changed (a kill mid-write, a full disk, a hand edit), or that cannot be
loaded, is reported with a warning, removed, and the run starts afresh
(:class:`CorruptResumeState`); the run's result says so (``resume_discarded``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.objectives import direction, monitor_of
from imgclf.core.io import atomic_write_text, sha256_file, write_csv
from imgclf.training.features import FeatureSource, feature_datasets, head_model
from imgclf.training.files import RunFiles  # noqa: F401  (re-exported: the loop's own type)
from imgclf.training.models import freeze_backbone, get_backbone, unfreeze_top, weight_layers
from imgclf.training.validation_metrics import SmoothedMetric, ValidationMetrics, smoothed_name

OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
WEIGHT_SAMPLES = 4000


def make_optimizer(train: dict[str, Any], learning_rate: float) -> keras.optimizers.Optimizer:
    """The configured optimizer at ``learning_rate``."""
    name = train["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=train["momentum"])
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=train["weight_decay"])
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise ImgclfError(f"unknown train.optimizer {name!r}", f"choose one of {', '.join(OPTIMIZERS)}")


def compile_model(model: keras.Model, train: dict[str, Any], learning_rate: float) -> None:
    model.compile(optimizer=make_optimizer(train, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


@dataclass
class RunResult:
    """What a training run produced."""

    history: pd.DataFrame
    status: str  # "completed", "early_stopped" or "diverged"
    best_epoch: int | None
    best_value: float | None
    monitor: str
    message: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # Where the run resumed from ({"from_epoch": N, "phase": P}), None when it started afresh.
    resumed: dict[str, int] | None = None
    # Why a resume state was thrown away (corrupt or partial), None when none was.
    resume_discarded: str | None = None


@dataclass
class PlateauCallbacks:
    """Early stopping and the rate reduction of one ``train`` section, watching the same metric."""

    smoother: SmoothedMetric  # adds the monitor's moving average (used when smoothing is set)
    early: keras.callbacks.EarlyStopping
    reduce: keras.callbacks.ReduceLROnPlateau
    watched: str  # the monitor, or its moving average's log key
    active: list[keras.callbacks.Callback]  # those the section enables, in the order fit needs


def plateau_callbacks(train_config: dict[str, Any], monitor: str) -> PlateauCallbacks:
    """Early stopping and ReduceLROnPlateau on ``monitor``, or on its moving average when
    ``train.early_stopping.smoothing`` is set (one-epoch spikes of a noisy metric ignored).
    Final training and tuning trials share them; place ``active`` after :class:`ValidationMetrics`."""
    mode = direction(monitor)
    smoothing = train_config["early_stopping"]["smoothing"]
    smoother = SmoothedMetric(monitor, smoothing)
    watched = smoothed_name(monitor) if smoothing else monitor
    early = keras.callbacks.EarlyStopping(monitor=watched, mode=mode,
                                          patience=train_config["early_stopping"]["patience"])
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor=watched, mode=mode, factor=train_config["reduce_lr"]["factor"],
        patience=train_config["reduce_lr"]["patience"], min_lr=train_config["reduce_lr"]["min_lr"], verbose=0)
    active = [smoother] if smoothing else []
    active += [early] if train_config["early_stopping"]["enabled"] else []
    active += [reduce] if train_config["reduce_lr"]["enabled"] else []
    return PlateauCallbacks(smoother, early, reduce, watched, active)


class _FiniteLoss(keras.callbacks.Callback):
    """Stops training after the first epoch whose loss is NaN or infinite.

    Checked once per epoch (an epoch's mean loss is NaN as soon as one batch's
    is): a per-batch check would make Keras copy the loss to the host after
    every step, which costs more than the whole check is worth.
    """

    def __init__(self) -> None:
        super().__init__()
        self.diverged_at: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = epoch
            self.model.stop_training = True


class _Recorder(keras.callbacks.Callback):
    """History rows, best checkpoint and weight samples; saves resume state."""

    def __init__(self, files: RunFiles, monitor: str, mode: str, phase: int, layers: list,
                 state: dict[str, Any], fingerprint: str, stateful: list, seed: int,
                 last_epoch: int = 0, log: Any = None, target: keras.Model | None = None,
                 resumable: bool = True, watched: str | None = None) -> None:
        super().__init__()
        # What chooses the best checkpoint: the monitor itself, or its moving average
        # (train.early_stopping.smoothing); best_value stays the monitor's own value there.
        self.watched = watched or monitor
        # The classifier whose weights are checkpointed: the fitted model, or the whole
        # classifier while its head alone trains on precomputed features (then no resume
        # state is kept: that phase takes seconds and is redone after an interruption).
        self.target, self.resumable = target, resumable
        self.last_epoch, self.log, self.started = last_epoch, log, time.monotonic()
        self.files, self.monitor, self.mode, self.phase = files, monitor, mode, phase
        self.layers = layers
        self.state = state
        self.fingerprint = fingerprint
        self.stateful = stateful  # (name, callback, attributes) restored on resume
        self.rng = np.random.default_rng(seed)
        self.learning_rate = 0.0
        self.indices: dict[str, np.ndarray] = {}

    # -- weight samples -------------------------------------------------
    def _sample(self, epoch: int) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged run has huge weights
            self._sample_layers(epoch)

    def _sample_layers(self, epoch: int) -> None:
        for layer in self.layers:
            for weight in layer.weights:
                kind = "kernel" if "kernel" in weight.path else "bias" if "bias" in weight.path else None
                if kind is None:
                    continue
                values = np.asarray(weight.value.numpy(), dtype=np.float32).ravel()
                key = f"{layer.name}/{kind}"
                if key not in self.indices:
                    size = min(WEIGHT_SAMPLES, values.size)
                    self.indices[key] = np.sort(self.rng.choice(values.size, size, replace=False))
                self.state["weights"][f"{key}/{epoch}"] = values[self.indices[key]]
                norm0 = self.state["weight_norm0"].setdefault(key, float(np.linalg.norm(values)))
                first = self.state["weights"].get(f"{key}/first_full")
                if first is None:
                    self.state["weights"][f"{key}/first_full"] = values.copy()
                    first = values
                change = float(np.linalg.norm(values - first) / max(norm0, 1e-12))
                self.state["changes"].append({"epoch": epoch, "layer": layer.name, "weight": kind,
                                              "relative_change": change,
                                              "mean_abs": float(np.mean(np.abs(values)))})

    def on_train_begin(self, logs=None):
        for name, callback, attributes in self.stateful:
            for attribute in attributes:
                value = self.state["callbacks"].get(name, {}).get(attribute)
                if value is not None:
                    setattr(callback, attribute, value)
        if not self.state["rows"] and not self.state["changes"]:
            self._sample(0)  # the initial weights, before any update

    def on_epoch_begin(self, epoch, logs=None):
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "phase": self.phase, "learning_rate": self.learning_rate}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.state["rows"].append(row)
        value = logs.get(self.watched)
        if value is not None and math.isfinite(value):
            best = self.state["best_watched"]  # the smoothed value when smoothing is set
            better = best is None or (value < best if self.mode == "min" else value > best)
            if better:
                self.state["best_watched"], self.state["best_epoch"] = float(value), epoch + 1
                self.state["best_value"] = float(logs.get(self.monitor, value))
                (self.target or self.model).save_weights(str(self.files.best_weights))
        self._sample(epoch + 1)
        self.state["epoch"], self.state["phase"] = epoch + 1, self.phase
        self.state["callbacks"] = {
            name: {a: _jsonable(getattr(cb, a, None)) for a in attributes}
            for name, cb, attributes in self.stateful}
        self.state["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.resumable:
            save_resume_state(self.files, self.model, self.state, self.fingerprint)
        write_csv(self.files.history, pd.DataFrame(self.state["rows"]))
        if self.log:  # how far the job is: one line per epoch
            shown = ", ".join(f"{k} {row[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                              if k in row)
            self.log.info("epoch %d/%d: %s (%.1f s)", epoch + 1, self.last_epoch, shown,
                          time.monotonic() - self.started)


def _load_best_weights(model: keras.Model, files: RunFiles) -> None:
    with warnings.catch_warnings():
        # The checkpoint's optimizer state is of another phase; only the weights are wanted.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(files.best_weights))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _fresh_state() -> dict[str, Any]:
    return {"epoch": 0, "phase": 1, "rows": [], "best_value": None, "best_epoch": None,
            "best_watched": None, "callbacks": {}, "weights": {}, "weight_norm0": {}, "changes": [], "phase1_end": None,
            "learning_rate": None}


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """Hash of everything that defines a run: a resume state must match it."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: The files of a resume state besides ``state.json``, whose sha256 it records.
RESUME_FILES = ("model.keras", "weights.npz")
#: The resume state's copy of the best checkpoint (``files.best_weights``), once there is one:
#: restored on resume, so that the checkpoint always belongs to the state's best epoch.
BEST_COPY = "best.weights.h5"


class CorruptResumeState(Exception):
    """A resume state that cannot be trusted: a file missing, truncated, changed or unreadable."""


def _fsync_file(path: Any) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def save_resume_state(files: RunFiles, model: keras.Model, state: dict[str, Any], fingerprint: str) -> None:
    """Save model and state to ``files.resume_dir`` (a new folder swapped in).

    ``state.json`` is written last, atomically (a temporary file and a rename), with the sha256
    of each other file (:data:`RESUME_FILES`, and :data:`BEST_COPY`, a copy of the best
    checkpoint): :func:`load_resume_state` checks them before loading.
    """
    parent = files.resume_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{files.resume_dir.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save(staging / "model.keras")
    arrays = {k.replace("/", "|"): v for k, v in state["weights"].items()}
    np.savez(staging / "weights.npz", **arrays)
    names = list(RESUME_FILES)
    if state["best_epoch"] is not None and files.best_weights.is_file():
        shutil.copyfile(files.best_weights, staging / BEST_COPY)
        names.append(BEST_COPY)
    checksums = {}
    for name in names:
        _fsync_file(staging / name)  # on disk before the state that vouches for them
        checksums[name] = sha256_file(staging / name)
    meta = {k: v for k, v in state.items() if k != "weights"}
    atomic_write_text(staging / "state.json",
                      json.dumps({"fingerprint": fingerprint, "checksums": checksums, **meta},
                                 indent=2, sort_keys=True, ensure_ascii=False) + "\n", fsync=True)
    old = parent / f".{files.resume_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if files.resume_dir.exists():
        files.resume_dir.rename(old)
    staging.rename(files.resume_dir)
    shutil.rmtree(old, ignore_errors=True)


def load_resume_state(files: RunFiles, fingerprint: str) -> tuple[keras.Model, dict[str, Any]] | None:
    """The saved model and state, if they exist and match ``fingerprint``.

    A state saved with other settings is removed (None: the run starts afresh).

    Raises:
        CorruptResumeState: The folder exists but its state is partial or corrupt: ``state.json``
            missing or unreadable, a file missing or not matching the sha256 recorded when the
            state was saved, or a file that fails to load. The message says what was wrong.
    """
    folder = files.resume_dir
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise CorruptResumeState(f"{folder} is not a folder")
    path = folder / "state.json"
    if not path.is_file():
        raise CorruptResumeState("state.json is missing")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptResumeState(f"state.json cannot be read ({exc})") from None
    if not isinstance(state, dict):
        raise CorruptResumeState("state.json does not hold a state (not a JSON object)")
    if state.pop("fingerprint", None) != fingerprint:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    lacking = sorted(set(_fresh_state()) - {"weights"} - set(state))  # the weights are in weights.npz
    if lacking:
        raise CorruptResumeState(f"state.json lacks {', '.join(lacking)}")
    checksums = state.pop("checksums", None)  # absent from states saved by older versions
    if checksums is not None and not isinstance(checksums, dict):
        raise CorruptResumeState("state.json's checksums are not a mapping")
    for name in dict.fromkeys([*RESUME_FILES, *(checksums or {})]):
        if not (folder / name).is_file():
            raise CorruptResumeState(f"{name} is missing")
        if checksums is None:
            continue
        expected = checksums.get(name)
        if expected is None:
            raise CorruptResumeState(f"state.json records no checksum for {name}")
        size = (folder / name).stat().st_size
        if sha256_file(folder / name) != expected:
            raise CorruptResumeState(f"{name} ({size:,} bytes) does not match the sha256 recorded when the "
                                     "state was saved (truncated or changed)")
    try:
        model = keras.models.load_model(folder / "model.keras")
    except Exception as exc:  # Keras raises many kinds (ValueError "File not found", zip errors...)
        raise CorruptResumeState(f"model.keras cannot be loaded ({type(exc).__name__}: {exc})") from None
    try:
        with np.load(folder / "weights.npz") as arrays:
            state["weights"] = {k.replace("|", "/"): arrays[k] for k in arrays.files}
    except Exception as exc:  # zip and pickle errors of a damaged file
        raise CorruptResumeState(f"weights.npz cannot be loaded ({type(exc).__name__}: {exc})") from None
    if (folder / BEST_COPY).is_file():
        # The checkpoint of the state's best epoch: the one beside it may be a later epoch's, saved
        # after this state (or cut short) by the interrupted attempt.
        staged = files.best_weights.with_name(f".{files.best_weights.name}.resume.tmp")
        shutil.copyfile(folder / BEST_COPY, staged)
        os.replace(staged, files.best_weights)
    elif state["best_epoch"] is None:
        files.best_weights.unlink(missing_ok=True)
    return model, state


def _restore(files: RunFiles, fingerprint: str, log: Any
             ) -> tuple[tuple[keras.Model, dict[str, Any]] | None, str | None]:
    """:func:`load_resume_state`, a corrupt state logged and removed: (restored or None, why discarded)."""
    try:
        return load_resume_state(files, fingerprint), None
    except CorruptResumeState as exc:
        reason = str(exc)
    shutil.rmtree(files.resume_dir, ignore_errors=True)
    message = (f"corrupt or partial resume state in {files.resume_dir}: {reason}; it was removed and the "
               "training starts afresh from epoch 1")
    if log:
        log.warning("%s", message)
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return None, reason


def train(
    build: Any,
    train_data: Any,
    val_data: Any,
    train_config: dict[str, Any],
    files: RunFiles,
    settings: dict[str, Any],
    class_weight: dict[int, float] | None = None,
    seed: int = 0,
    log: Any = None,
    features: FeatureSource | None = None,
    phase1_data: Any = None,
    val_labels: np.ndarray | None = None,
) -> tuple[keras.Model, RunResult]:
    """Train a model in one or two phases, resuming from a saved state if any.

    Args:
        build: A function returning a fresh, uncompiled model.
        train_data: Batched training dataset.
        val_data: Batched validation dataset.
        train_config: The ``train`` config section.
        files: Where to write.
        settings: Everything defining the run (for the resume fingerprint).
        class_weight: Per-class loss weights, or None.
        seed: Seed for weight sampling.
        log: A logger for progress, or None.
        features: For a pretrained backbone: phase 1 trains the head on
            features computed once from these images (:mod:`imgclf.training.features`).
        phase1_data: Phase 1's training dataset where it differs from ``train_data``
            (augmentation during fine-tuning only), or None.
        val_labels: The validation labels in ``val_data``'s order (read from it when None):
            every validation metric is computed from one pass of predictions per epoch
            (:mod:`imgclf.training.validation_metrics`).

    Returns:
        The model with its best weights, and the run's result.
    """
    started = time.monotonic()
    fingerprint = settings_fingerprint(settings)
    restored, discarded = _restore(files, fingerprint, log)
    resumed = None
    if restored is not None:
        model, state = restored
        resumed = {"from_epoch": int(state["epoch"]), "phase": int(state["phase"])}
        if log:
            log.info("resuming from epoch %d (phase %d)", state["epoch"], state["phase"])
    else:
        shutil.rmtree(files.resume_dir, ignore_errors=True)
        # A fresh run owes nothing to an earlier attempt: its best checkpoint would otherwise be
        # taken back at the end should this run never improve on nothing (a diverged first epoch).
        files.best_weights.unlink(missing_ok=True)
        model, state = build(), _fresh_state()
    monitor = monitor_of(train_config)
    mode = direction(monitor)
    class_names = list(settings.get("classes") or [])
    if val_labels is None:
        val_labels = np.concatenate([np.asarray(y) for _, y in val_data] or [np.zeros(0, np.int64)])
    if not class_names:
        class_names = [str(i) for i in range(int(model.output.shape[-1]))]
    fine = train_config["fine_tune"]
    pretrained = get_backbone(model) is not None and settings.get("pretrained", False)
    phases = [(1, train_config["learning_rate"], train_config["epochs"])]
    if pretrained and fine["enabled"]:
        phases.append((2, fine["learning_rate"], fine["epochs"]))
    diverged = None
    stopped_early = False
    phase_log: list[dict[str, Any]] = []
    for phase, learning_rate, epochs in phases:
        if state["phase"] > phase:
            continue  # finished before the interruption
        resuming = restored is not None and state["phase"] == phase and state["epoch"] > 0
        start_epoch = state["epoch"] if resuming else (state["phase1_end"] or 0)
        if not resuming:
            # A phase starts with fresh callbacks: early stopping's patience spent in phase 1
            # must not stop phase 2 after one epoch (the saved states are for resuming a phase).
            state["callbacks"] = {}
            if phase == 1 and pretrained:
                freeze_backbone(model)
            if phase == 2:
                _load_best_weights(model, files)
                count = unfreeze_top(model, fine["unfreeze_layers"])
                if log:
                    log.info("phase 2: fine-tuning the top %d backbone layers at learning rate %g",
                             count, learning_rate)
            compile_model(model, train_config, learning_rate)
            state["phase"] = phase
        fitted, fit_train, fit_val = model, train_data, val_data
        if phase == 1 and phase1_data is not None:
            fit_train = phase1_data
        on_features = phase == 1 and pretrained and features is not None
        if on_features:
            started_features = time.monotonic()
            fit_train, fit_val = feature_datasets(model, features)
            fitted = head_model(model)
            compile_model(fitted, train_config, learning_rate)
            if log:
                log.info("phase 1 on precomputed backbone features (%.1f s to compute)",
                         time.monotonic() - started_features)
        end_epoch = (state["phase1_end"] or 0) + epochs if phase == 2 else epochs
        if start_epoch >= end_epoch:
            continue
        # The best checkpoint watches what early stopping and the rate reduction watch.
        plateau = plateau_callbacks(train_config, monitor)
        early = plateau.early
        finite = _FiniteLoss()
        validation = ValidationMetrics(fit_val, val_labels, class_names)
        recorder = _Recorder(files, monitor, mode, phase, weight_layers(model), state, fingerprint,
                             [("early_stopping", early, ["wait", "best", "best_epoch"]),
                              ("reduce_lr", plateau.reduce, ["wait", "best", "cooldown_counter"]),
                              ("smoothing", plateau.smoother, ["value"])], seed,
                             end_epoch, log, target=model, resumable=not on_features, watched=plateau.watched)
        if resuming and state.get("learning_rate") and not on_features:
            model.optimizer.learning_rate.assign(state["learning_rate"])
        # First: the others read its metrics.
        callbacks: list[keras.callbacks.Callback] = [validation, finite, *plateau.active]
        if files.tensorboard_dir is not None:
            callbacks.append(keras.callbacks.TensorBoard(
                str(files.tensorboard_dir), histogram_freq=train_config["tensorboard_histogram_freq"],
                write_graph=False))
        callbacks.append(recorder)  # last: restores after the others reset, saves after they update
        if log:
            log.info("phase %d: epochs %d-%d", phase, start_epoch + 1, end_epoch)
        fitted.fit(fit_train, epochs=end_epoch, initial_epoch=start_epoch,
                  callbacks=callbacks, class_weight=class_weight, verbose=0,
                  shuffle=False)  # the dataset shuffles itself, seeded
        phase_log.append({"phase": phase, "learning_rate": learning_rate, "first_epoch": start_epoch + 1,
                          "last_epoch": state["epoch"]})
        if finite.diverged_at is not None:
            diverged = finite.diverged_at
            break
        if early.stopped_epoch:
            stopped_early = True
        if phase == 1:
            state["phase1_end"] = state["epoch"]
    history = pd.DataFrame(state["rows"])
    if not history.empty:
        write_csv(files.history, history)
    np.savez(files.weight_samples, **{k.replace("/", "|"): v for k, v in state["weights"].items()
                                      if not k.endswith("/first_full")},
             changes=json.dumps(state["changes"]))
    if files.best_weights.exists():
        _load_best_weights(model, files)
    else:
        model.save_weights(str(files.best_weights))
    shutil.rmtree(files.resume_dir, ignore_errors=True)
    if diverged is not None:
        message = (f"training diverged: the loss became NaN or infinite in epoch {diverged + 1} "
                   "(exploding gradients); lower train.learning_rate, or try another optimizer")
        status = "diverged"
    else:
        message = ""
        status = "early_stopped" if stopped_early else "completed"
    result = RunResult(history, status, state["best_epoch"], state["best_value"], monitor, message,
                       phase_log, time.monotonic() - started, resumed, discarded)
    return model, result
