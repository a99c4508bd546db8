"""Training core: models, inputs, the loop (resume, divergence, determinism)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

import keras  # noqa: E402


from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ImgclfError  # noqa: E402
from imgclf.training import loop  # noqa: E402
from imgclf.training.inputs import read_manifest  # noqa: E402
from imgclf.training.loop import RunFiles  # noqa: E402
from imgclf.training.models import ARCHITECTURES, build_model, get_backbone  # noqa: E402
from imgclf.training.run import run_training  # noqa: E402


def cfg(**sections):
    raw = {"seed": 3, "train": {"batch_size": 16, "epochs": 2, "tensorboard_histogram_freq": 0}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return validate_config(raw)


def files_in(path: Path) -> RunFiles:
    path.mkdir(parents=True, exist_ok=True)
    return RunFiles(path / "history.csv", path / "best.weights.h5", path / "samples.npz", path / "resume")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_builds_and_trains_one_step(architecture):
    model = build_model(cfg(model={"architecture": architecture})["model"], 3, (32, 32, 1))
    loop.compile_model(model, cfg()["train"], 1e-3)
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 1)).astype("float32")
    logs = model.train_on_batch(x, np.array([0, 2]), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert model.output_shape == (None, 3) and model.layers[-1].name == "classifier"


def test_backbone_rejects_a_too_small_input():
    with pytest.raises(ImgclfError, match="cannot take inputs of 16x16"):
        build_model(cfg(model={"architecture": "mobilenet_v3_small"})["model"], 3, (16, 16, 3))


def test_local_weights_file_loads_and_a_mismatched_one_fails(tmp_path):
    source = build_model(cfg(model={"architecture": "mobilenet_v3_small"})["model"], 3, (32, 32, 3))
    path = tmp_path / "backbone.weights.h5"
    get_backbone(source).save_weights(str(path))
    loaded = build_model(cfg(model={"architecture": "mobilenet_v3_small", "weights": str(path)})["model"],
                         5, (32, 32, 3))
    for a, b in zip(get_backbone(source).weights, get_backbone(loaded).weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ImgclfError, match="does not fit efficientnet_b0"):
        build_model(cfg(model={"architecture": "efficientnet_b0", "weights": str(path)})["model"], 3, (32, 32, 3))
    with pytest.raises(ImgclfError, match="does not exist"):
        build_model(cfg(model={"architecture": "resnet50", "weights": str(tmp_path / "no.weights.h5")})["model"],
                    3, (32, 32, 3))


@pytest.mark.slow
def test_frozen_backbone_does_not_change_in_phase_1_and_phase_2_fine_tunes(fold, tmp_path):
    source = build_model(cfg(model={"architecture": "mobilenet_v3_small"})["model"], 3, (32, 32, 3))
    weights = tmp_path / "pre.weights.h5"
    get_backbone(source).save_weights(str(weights))
    before = [w.numpy().copy() for w in get_backbone(source).weights]
    config = cfg(model={"architecture": "mobilenet_v3_small", "weights": str(weights)},
                 data={"channels": 3}, train={"epochs": 2, "reduce_lr": {"enabled": False}})
    metrics = run_training(config, fold, files_in(tmp_path / "p1"), 16)
    # Built without the pretrained file: only the trained weights can make it equal.
    after = build_model({**config["model"], "weights": "none"}, 3, (32, 32, 3))
    after.load_weights(str(tmp_path / "p1" / "best.weights.h5"))
    for a, b in zip(before, get_backbone(after).weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert [p["phase"] for p in metrics["phases"]] == [1]
    config["train"]["fine_tune"] = {"enabled": True, "unfreeze_layers": 10, "epochs": 2, "learning_rate": 1e-4}
    metrics = run_training(config, fold, files_in(tmp_path / "p2"), 16)
    assert [p["phase"] for p in metrics["phases"]] == [1, 2]
    history = pd.read_csv(tmp_path / "p2" / "history.csv")
    assert history["phase"].tolist()[-1] == 2 and history["learning_rate"].iloc[-1] == pytest.approx(1e-4)
    tuned = build_model({**config["model"], "weights": "none"}, 3, (32, 32, 3))
    tuned.load_weights(str(tmp_path / "p2" / "best.weights.h5"))
    if metrics["best_epoch"] > 2:  # the best epoch is a fine-tuning one: the top layers moved
        changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, get_backbone(tuned).weights)]
        assert any(changed)


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(fold, tmp_path, monkeypatch):
    config = cfg(train={"epochs": 4, "early_stopping": {"enabled": False, "smoothing": 0.5}})
    files = files_in(tmp_path / "run")
    original = loop._Recorder.on_epoch_end

    def crash_after_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)  # the state of this epoch is saved first, as in a real run
        if epoch == 1:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop._Recorder, "on_epoch_end", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, fold, files, 16)
    monkeypatch.setattr(loop._Recorder, "on_epoch_end", original)
    assert json.loads((files.resume_dir / "state.json").read_text())["epoch"] == 2
    messages = []

    class Log:
        def info(self, msg, *args):
            messages.append(msg % args)

    keras.backend.clear_session()
    metrics = run_training(config, fold, files, 16, Log())
    assert "resuming from epoch 2 (phase 1)" in messages
    history = pd.read_csv(files.history)
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    # The moving average carries over the interruption (restored with the callbacks' state).
    np.testing.assert_allclose(history["val_loss_smoothed"],
                               history["val_loss"].ewm(alpha=0.5, adjust=False).mean(), rtol=1e-6)
    assert metrics["epochs_run"] == 4 and not files.resume_dir.exists()
    # Other settings do not resume from a stale state.
    loop.save_resume_state(files, build_model(config["model"], 3, (32, 32, 1)),
                           {**loop._fresh_state(), "epoch": 3}, "stale")
    keras.backend.clear_session()
    messages.clear()
    run_training(config, fold, files, 16, Log())
    assert not any("resuming" in m for m in messages)


@pytest.mark.slow
def test_same_seed_gives_identical_weights_across_processes(fold, tmp_path):
    config = json.dumps(cfg(train={"epochs": 2}, data={"channels": 1}))
    outputs = []
    for name in ("one", "two"):
        out = tmp_path / name
        subprocess.run([sys.executable, str(Path(__file__).with_name("train_once.py")), config,
                        *map(str, (fold.index, fold.train_manifest, fold.val_manifest, fold.data_root)),
                        str(out)], check=True, capture_output=True, timeout=300)
        outputs.append(out)
    models = []
    for out in outputs:
        model = build_model(cfg()["model"], 3, (32, 32, 1))
        model.load_weights(str(out / "best.weights.h5"))
        models.append(model)
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (outputs[0] / "history.csv").read_text() == (outputs[1] / "history.csv").read_text()


def test_smoothing_chooses_the_checkpoint_on_the_moving_average(fold, tmp_path):
    config = cfg(train={"epochs": 4, "early_stopping": {"monitor": "val_loss", "smoothing": 0.6}})
    files = files_in(tmp_path / "run")
    metrics = run_training(config, fold, files, 16)
    history = pd.read_csv(files.history)
    expected = history["val_loss"].ewm(alpha=0.4, adjust=False).mean()
    np.testing.assert_allclose(history["val_loss_smoothed"], expected, rtol=1e-6)
    best = int(history.loc[history["val_loss_smoothed"].idxmin(), "epoch"])
    assert metrics["best_epoch"] == best
    # best_value is the monitor's own value at that epoch: what deployment ranks seeds by.
    assert metrics["best_value"] == pytest.approx(float(history.loc[history["epoch"] == best, "val_loss"].iloc[0]))


def test_divergence_is_recorded_or_fails(fold, tmp_path):
    config = cfg(train={"optimizer": "sgd", "learning_rate": 1e12, "momentum": 0.9, "epochs": 3,
                        "on_divergence": "record"})
    metrics = run_training(config, fold, files_in(tmp_path / "d1"), 16)
    assert metrics["status"] == "diverged" and "exploding gradients" in metrics["message"]
    config["train"]["on_divergence"] = "fail"
    with pytest.raises(ImgclfError, match="loss became NaN or infinite"):
        run_training(config, fold, files_in(tmp_path / "d2"), 16)


def test_changed_or_missing_image_is_an_error_before_training(fold, tmp_path):
    table = pd.read_csv(fold.train_manifest, dtype=str)
    table.loc[0, "sha256"] = "0" * 64
    table.loc[1, "path"] = "a/gone.png"
    bad = tmp_path / "train.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(ImgclfError, match="1 image\\(s\\) are missing and 1 changed") as error:
        read_manifest(bad, fold.data_root, ["a", "b", "c"])
    assert "a/gone.png" in str(error.value)


def test_weight_samples_and_plots(fold, tmp_path):
    from imgclf.core.job import write_file
    from imgclf.training.plots import load_weight_samples, plot_curves, plot_weight_histograms

    files = files_in(tmp_path / "plots")
    run_training(cfg(train={"epochs": 2}), fold, files, 16)
    samples, changes = load_weight_samples(files.weight_samples)
    assert "conv1/kernel" in samples and "classifier/bias" in samples
    assert sorted(samples["conv1/kernel"]) == [0, 1, 2]  # initial weights and two epochs
    assert {c["layer"] for c in changes} >= {"conv1", "classifier"}
    write_file(tmp_path / "curves.png", plot_curves(pd.read_csv(files.history)))
    write_file(tmp_path / "weights.png", plot_weight_histograms(files.weight_samples))
    assert (tmp_path / "curves.png").stat().st_size > 5000 and (tmp_path / "weights.png").stat().st_size > 5000


def test_augmentation_is_seeded_and_changes_the_images(fold):
    from imgclf.training.inputs import augmentation_layers, make_dataset
    manifest = read_manifest(fold.train_manifest, fold.data_root, ["a", "b", "c"])
    augment = {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "contrast": 0.2}

    def first_batch(seed, options):
        keras.utils.set_random_seed(seed)
        data = make_dataset(manifest, (32, 32), 3, 8, True, seed, augmentation_layers(options, seed))
        return next(iter(data))[0].numpy()

    plain = first_batch(5, {"flip": "none", "rotation": 0, "zoom": 0, "contrast": 0})
    one, two = first_batch(5, augment), first_batch(5, augment)
    np.testing.assert_array_equal(one, two)
    assert one.shape == plain.shape == (8, 32, 32, 3)
    assert not np.array_equal(one, plain)
    assert augmentation_layers({"flip": "none", "rotation": 0, "zoom": 0, "contrast": 0}, 1) is None


def test_balanced_class_weights():
    from imgclf.training.inputs import class_weights
    weights = class_weights(np.array([0] * 30 + [1] * 10), 2, "balanced")
    assert weights == pytest.approx({0: 40 / 60, 1: 40 / 20})
    assert class_weights(np.array([0, 1]), 2, "none") is None


def test_tensorboard_logs_hold_weight_histograms(fold, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, EventAccumulator
    files = files_in(tmp_path / "tb")
    files.tensorboard_dir = tmp_path / "tb" / "tensorboard"
    run_training(cfg(train={"epochs": 2, "tensorboard_histogram_freq": 1}), fold, files, 16)
    train_logs = files.tensorboard_dir / "train"
    events = EventAccumulator(str(train_logs), size_guidance={HISTOGRAMS: 0})
    events.Reload()
    tags = events.Tags()["histograms"] or events.Tags()["tensors"]
    assert any("conv1" in tag for tag in tags), tags


def test_mixed_precision_on_a_gpu_and_float32_without_one(fold, tmp_path):
    """The policy follows train.mixed_precision and the GPUs a job sees; the softmax stays float32.

    No GPU here: the GPU case is exercised with a stated GPU list (mixed float16 also runs on a CPU,
    slowly); on a real GPU node TensorFlow lists the device SLURM gave the job.
    """
    import logging

    from imgclf.core.runtime import set_precision

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("test.precision")
    log.addHandler(handler)
    try:
        assert set_precision(True, [], log) == "float32" and "sees no GPU" in records[0].getMessage()
        assert set_precision(True, ["/physical_device:GPU:0"]) == "mixed_float16"
        model = build_model(validate_config({})["model"], 3, (16, 16, 3))
        assert model.get_layer("conv1").compute_dtype == "float16" and model.output.dtype == "float32"
        from imgclf.training.loop import compile_model

        compile_model(model, validate_config({})["train"], 0.01)
        x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
        loss = model.train_on_batch(x, np.array([0, 1, 2, 0]))
        assert np.isfinite(loss if np.isscalar(loss) else loss[0])
    finally:
        set_precision(False, [])
    assert keras.mixed_precision.global_policy().name == "float32"
    metrics = run_training(validate_config({"data": {"image_size": [16, 16]},
                                            "train": {"epochs": 1, "batch_size": 8, "mixed_precision": True,
                                                      "tensorboard_histogram_freq": 0}}),
                           fold, RunFiles(history=tmp_path / "h.csv", best_weights=tmp_path / "b.weights.h5",
                                          weight_samples=tmp_path / "w.npz", resume_dir=tmp_path / "r"), 8)
    assert metrics["precision"] == "float32"  # this machine has no GPU
