"""Saliency maps: what the classifier looks at (Grad-CAM), and how much of it lies on the border.

A reviewer of a medical classifier asks first "what does the model look at". Skin-lesion
photographs, for one, carry rulers, ink marks and vignetted frames at their edges that correlate
with the diagnosis: a model can learn those instead of the lesion. This module gives

- :func:`grad_cam`: Grad-CAM maps (Selvaraju et al., 2017) on the last convolutional feature
  map, for the project's small CNN, for a pretrained backbone nested as a sub-model, and for an
  ensemble of such classifiers (the mean of its members' maps);
- :func:`border_share`: per image, the share of the saliency lying in the outer band of the
  image, with :func:`area_share` (what a uniform map gives) as the reference;
- :func:`border_summary` and :func:`border_findings`: per class (or per audit group), and a
  warning when a class's saliency sits on the border;
- :func:`gallery_picks` and :func:`overlay`: the images and overlays of the report's grid.

Everything is data in, data out; no file is read or written here. The table functions need
only numpy and pandas. The Grad-CAM functions import Keras and TensorFlow when called: call
:func:`imgclf.core.runtime.configure` before them (as for :mod:`imgclf.training.predict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.findings import Finding

#: The border band's width, as a share of the image's height (rows) and width (columns).
DEFAULT_MARGIN = 0.10
#: An image whose border share exceeds this has most of its saliency on the border.
BORDER_MAJORITY = 0.5

# The flag (border_findings), measured on tests/evaluate/test_saliency.py's data: 48x48 gray
# textures, two classes, a 5x5 white mark deciding the class ("marked") or its absence
# ("plain"); the small CNN trained in rounds of 5 epochs until it classified 95% of held-out
# images; Grad-CAM on 40 held-out images per class, margin 0.10 (a uniform map: 0.373). Class
# means of the border share, one model per seed:
#   mark in a corner,  2 conv blocks (24x24 maps), 20 seeds: marked 0.74-0.96, plain 0.27-0.74
#   mark in a corner,  3 conv blocks (12x12 maps), 10 seeds: marked 0.60-0.69, plain 0.43-0.63
#   mark in the centre (the control), 2 blocks,    20 seeds: marked 0.02-0.18, plain 0.31-0.49
#   mark in the centre, 3 blocks,                  10 seeds: marked 0.00-0.01, plain 0.39-0.52
# A Grad-CAM blob is as wide as the layer's receptive field, wider than the 10% band: a mark
# that alone decides the class puts only 0.6-0.7 of the saliency in the band on coarse maps
# (a backbone's 7x7 maps at 224x224 are as coarse). And the class recognised by the mark's
# absence often looks at the border too: at the corners, to check them, or at the frame the
# convolutions' zero padding draws (Grad-CAM's artefact for a class without evidence of its
# own). So the rule first considered, "0.15 above the other classes' median", missed 4 of the
# 10 shortcuts on 3-block maps and 2 of 20 on 2-block ones: the flag compares a class with the
# uniform reference only. One control model stopped after 10 epochs had its plain class at 0.66
# (the padding frame), a false warning; none of 30 trained for 20 epochs or more exceeded 0.49.
#: A class is flagged when the mean of its border shares exceeds this: most of its saliency in a
#: band of about a third of the image (controls: 0.52 at most; shortcuts: 0.60 at least) ...
FLAG_MIN_MEAN = 0.55
#: ... and exceeds a uniform map's share by this much (with a wide margin the band alone holds
#: most of the image).
FLAG_ABOVE_UNIFORM = 0.15
#: Classes with fewer maps than this are not judged (a mean of two maps is noise).
FLAG_MIN_IMAGES = 5



# -- Grad-CAM -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureLayer:
    """Where Grad-CAM reads the feature map.

    Attributes:
        layer: The layer whose output is the feature map: the last convolution, or the
            batch normalisation, activation and residual layers that follow it at the same
            resolution (their output is the rectified map the head pools; the Keras Grad-CAM
            example reads ``top_activation`` of EfficientNet the same way).
        conv: The last convolution layer itself.
        path: The nested models from the outer model down to the one holding ``layer``
            (empty when it is a layer of the outer model itself).
    """

    layer: Any
    conv: Any
    path: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """``backbone/top_activation``-style name, for logs and reports."""
        return "/".join([m.name for m in self.path] + [self.layer.name])


def _conv_types() -> tuple[type, ...]:
    from keras import layers

    return (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Conv2DTranspose)


def _is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _contains_conv(layer: Any) -> bool:
    if isinstance(layer, _conv_types()):
        return True
    return _is_model(layer) and any(_contains_conv(inner) for inner in layer.layers)


def _output_shape(layer: Any) -> tuple | None:
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    shape = getattr(output, "shape", None)
    return tuple(shape) if shape is not None else None


def last_conv_layer(model: Any) -> FeatureLayer:
    """The last convolutional feature map of a classifier, also inside a nested backbone.

    The last layer (in the model's topological order) that is a convolution (Conv2D,
    DepthwiseConv2D, SeparableConv2D, Conv2DTranspose) or a nested model holding one; a nested
    model is searched the same way. The feature map is then taken after the layers that follow
    that convolution at the same 4-D resolution (batch normalisation, activation, a residual
    addition), before pooling or flattening: for the small CNN ``relu3``, for EfficientNet
    ``top_activation``, for ResNet50 ``conv5_block3_out``.

    For an ensemble (nested whole classifiers named ``seed_<n>``, :func:`imgclf.training.ensemble.ensemble_members`),
    call it on each member.

    Raises:
        ImgclfError: The model has no convolution layer.
    """
    path: tuple[Any, ...] = ()
    container = model
    while True:
        holders = [layer for layer in container.layers if _contains_conv(layer)]
        if not holders:
            raise ImgclfError(
                f"saliency maps need a convolutional network: model {model.name!r} has no convolution layer "
                "(Conv2D, DepthwiseConv2D, SeparableConv2D) to take a Grad-CAM feature map from",
                "compute saliency maps for a model built by imgclf (the small CNN or a pretrained backbone)")
        last = holders[-1]
        if isinstance(last, _conv_types()):
            break
        path += (last,)
        container = last
    chosen = last
    shape = _output_shape(last)
    if shape is not None and len(shape) == 4:
        for later in container.layers[container.layers.index(last) + 1:]:
            later_shape = _output_shape(later)
            if later_shape is None or len(later_shape) != 4 or later_shape[1:3] != shape[1:3]:
                break
            chosen = later
    return FeatureLayer(chosen, last, path)


def _softmax_classifier(model: Any) -> Any | None:
    """The outer model's last layer when it is a Dense with a softmax (imgclf's ``classifier``)."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if (isinstance(last, keras.layers.Dense) and activation is not None
            and getattr(activation, "__name__", "") == "softmax" and len(model.outputs) == 1
            and model.outputs[0] is last.output):
        return last
    return None


def _with_feature(model: Any, path: tuple[Any, ...], feature: Any, classifier: Any | None) -> Any:
    """A model with the inputs of ``model`` and the outputs [feature map, the classifier's input
    (only when ``classifier`` is given), ``model``'s outputs...].

    In Keras 3 a nested model's inner tensors are not connected to the outer model's input, so
    ``keras.Model(outer.input, backbone.get_layer(...).output)`` fails ("not connected"). The
    outer graph is replayed instead (``keras.models.clone_model`` with the same layers, so the
    same weights), the nested model holding the feature layer being called as a model that also
    returns the feature map (built the same way, recursively).
    """
    import keras

    if not path and classifier is None:
        return keras.Model(_inputs(model), [feature.output, *model.outputs])
    inner = _with_feature(path[0], path[1:], feature, None) if path else None
    held: dict[str, Any] = {}

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if path and layer is path[0]:
            feature_map, *outputs = inner(*args, **kwargs)
            held["feature"] = feature_map
            return outputs[0] if len(outputs) == 1 else outputs
        if classifier is not None and layer is classifier:
            held["classifier_input"] = args[0]
        output = layer(*args, **kwargs)
        if not path and layer is feature:
            held["feature"] = output
        return output

    replay = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    hidden = [held["classifier_input"]] if classifier is not None else []
    return keras.Model(_inputs(replay), [held["feature"], *hidden, *replay.outputs])


def _inputs(model: Any) -> Any:
    # A single input as a tensor, not a one-element list: Keras warns when a model built on a
    # list is called with a tensor.
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def grad_cam(model: Any, images: np.ndarray, class_index: np.ndarray | None = None,
             batch_size: int = 32) -> np.ndarray:
    """Grad-CAM maps of ``images`` for the classes ``class_index``.

    The gradient of the class's score with respect to the last convolutional feature map
    (:func:`last_conv_layer`) is averaged over the map's positions into one weight per
    channel; the map is the ReLU of the channels weighted and summed, upsampled bilinearly to
    the image's height and width and divided by its maximum (an all-zero map stays zero).

    The score is the class's pre-softmax logit when the model ends with a softmax Dense layer
    (imgclf's ``classifier``), as in the paper: the probability saturates on the confident
    images a gallery shows (its gradient, p(1 - p) times the logit's, vanishes as p nears 1)
    and it mixes in the other classes' logits. Otherwise the output itself is used.

    An ensemble (:func:`imgclf.training.ensemble.ensemble_members`) gets the mean of its members' maps, renormalised.

    Args:
        model: A Keras classifier taking float images in [0, 255] (:func:`imgclf.training.predict.load_model`).
        images: (N, height, width, channels) as the model takes them.
        class_index: (N,) the class whose evidence each map shows (the true or the predicted
            one); None: the predicted class.
        batch_size: Images per gradient computation.

    Returns:
        float32 (N, height, width) in [0, 1].

    Raises:
        ImgclfError: The model has no convolution layer.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, height, width, channels), got shape {images.shape}")
    if class_index is None and len(images):
        class_index = np.argmax(model.predict(images, batch_size=batch_size, verbose=0), axis=1)
    class_index = np.asarray([] if class_index is None else class_index, dtype=np.int64).reshape(-1)
    if class_index.shape[0] != images.shape[0]:
        raise ValueError(f"{class_index.shape[0]} class indices for {images.shape[0]} images")
    n_classes = int(model.outputs[0].shape[-1])
    if len(class_index) and (class_index.min() < 0 or class_index.max() >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes}), got {class_index.min()}..{class_index.max()}")
    from imgclf.training.ensemble import ensemble_members

    members = ensemble_members(model)
    if members:
        mean = np.mean([grad_cam(member, images, class_index, batch_size) for member in members], axis=0)
        return _normalise(mean)
    feature = last_conv_layer(model)
    classifier = _softmax_classifier(model)
    both = _with_feature(model, feature.path, feature.layer, classifier)
    maps = [_grad_cam_batch(both, classifier, images[start:start + batch_size],
                            class_index[start:start + batch_size])
            for start in range(0, len(images), max(1, int(batch_size)))]
    height, width = images.shape[1:3]
    return np.concatenate(maps) if maps else np.zeros((0, height, width), np.float32)


def _grad_cam_batch(both: Any, classifier: Any | None, images: np.ndarray, class_index: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    rows = tf.stack([tf.range(len(class_index), dtype=tf.int64), tf.convert_to_tensor(class_index)], axis=1)
    with tf.GradientTape() as tape:
        outputs = both(x, training=False)
        feature_map = outputs[0]
        if classifier is not None:
            hidden = tf.cast(outputs[1], tf.float32)
            scores = tf.matmul(hidden, tf.cast(classifier.kernel, tf.float32))
            if classifier.bias is not None:
                scores = scores + tf.cast(classifier.bias, tf.float32)
        else:  # no softmax Dense layer at the end: the output itself
            scores = tf.cast(outputs[-1], tf.float32)
        # Images are independent in inference mode: the gradient of the sum is each image's own.
        score = tf.reduce_sum(tf.gather_nd(scores, rows))
    gradients = tf.cast(tape.gradient(score, feature_map), tf.float32)
    feature_map = tf.cast(feature_map, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2))  # (B, channels)
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", feature_map, weights))
    cam = tf.image.resize(cam[..., tf.newaxis], images.shape[1:3], method="bilinear")[..., 0]
    return _normalise(cam.numpy())


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum; a map without a positive value becomes all zero."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(len(maps), np.float32)
    scale = np.where(peak > 0, peak, 1.0).astype(np.float32)
    out = maps / scale[:, None, None]
    out[peak <= 0] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# -- Border share ---------------------------------------------------------------------------
def _band(height: int, width: int, margin: float) -> tuple[int, int]:
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must lie in [0, 0.5), got {margin}")
    # round half up (Python's round() rounds 0.5 to even).
    return int(np.floor(margin * height + 0.5)), int(np.floor(margin * width + 0.5))


def area_share(height: int, width: int, margin: float = DEFAULT_MARGIN) -> float:
    """The border band's share of the image's area: the border share of a uniform map, the
    reference a border share is read against (1 - 0.8^2 = 0.36 for margin 0.10 when 10% of the
    size is a whole number of pixels; 0.375 at 48x48, where the band is 5 pixels wide)."""
    rows, cols = _band(height, width, margin)
    return 1.0 - max(height - 2 * rows, 0) * max(width - 2 * cols, 0) / float(height * width)


def border_share(heatmaps: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Per map, the share of its saliency mass in the outer band of the image.

    The band is ``round(margin * height)`` rows at the top and at the bottom and
    ``round(margin * width)`` columns at the left and at the right. A uniform map gives the
    band's area share (:func:`area_share`, 0.36 for margin 0.10): the reference; a map all in
    the band gives 1, one all inside gives 0, an all-zero map NaN.

    Args:
        heatmaps: (N, height, width) or one (height, width) map, non-negative.
        margin: The band's width as a share of the height and of the width.

    Returns:
        float64 (N,) (a 0-d array for one map).
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    single = maps.ndim == 2
    if single:
        maps = maps[np.newaxis]
    if maps.ndim != 3:
        raise ValueError(f"heat maps must be (N, height, width), got shape {maps.shape}")
    if np.any(maps < 0):
        raise ValueError("heat maps must be non-negative (a Grad-CAM map is the ReLU of its weighted channels)")
    _, height, width = maps.shape
    rows, cols = _band(height, width, margin)
    total = maps.sum(axis=(1, 2))
    inner = maps[:, rows:height - rows, cols:width - cols].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, 1.0 - inner / np.where(total > 0, total, 1.0), np.nan)
    share = np.clip(share, 0.0, 1.0)  # rounding of the two sums
    return share[0] if single else share


def border_summary(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Border shares summarised per value of ``by`` (a class, or an audit group).

    Args:
        table: One row per image, with ``border_share`` (NaN for an all-zero map) and ``by``.
        by: The column to group on (``label``, a group column...).

    Returns:
        One row per value of ``by`` (sorted): ``by``, ``n`` (images with a map), ``n_empty``
        (all-zero maps, not in the statistics), ``mean_border_share``, ``median_border_share``,
        ``share_above_half`` (share of the images whose border share exceeds 0.5).
    """
    missing = [c for c in (by, "border_share") if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {missing}")
    rows = []
    for value, group in table.groupby(by, sort=True, dropna=False):
        shares = pd.to_numeric(group["border_share"], errors="coerce").to_numpy(np.float64)
        defined = shares[np.isfinite(shares)]
        rows.append({by: value, "n": int(len(defined)), "n_empty": int(len(shares) - len(defined)),
                     "mean_border_share": float(defined.mean()) if len(defined) else np.nan,
                     "median_border_share": float(np.median(defined)) if len(defined) else np.nan,
                     "share_above_half": float(np.mean(defined > BORDER_MAJORITY)) if len(defined) else np.nan})
    return pd.DataFrame(rows, columns=[by, "n", "n_empty", "mean_border_share", "median_border_share",
                                       "share_above_half"])


def border_findings(per_class: pd.DataFrame, area_share: float, by: str = "label",
                    margin: float = DEFAULT_MARGIN) -> list[dict[str, Any]]:
    """Warn about each class (or group) whose saliency sits on the image's border.

    A class is flagged when the mean of its border shares exceeds ``max(FLAG_MIN_MEAN,
    area_share + FLAG_ABOVE_UNIFORM)``, over at least ``FLAG_MIN_IMAGES`` maps. It is not
    compared with the other classes: with a shortcut, the class recognised by the mark's absence
    looks at the border too (see the constants for the measurements); the message gives the
    other classes' median beside the uniform reference, for the reader to judge.

    Args:
        per_class: :func:`border_summary`'s table.
        area_share: A uniform map's border share (:func:`area_share`).
        by: The column naming the classes (or groups) in ``per_class``.
        margin: The band's width the shares were computed with (for the message).

    Returns:
        Finding dicts (:class:`imgclf.core.findings.Finding`): code ``saliency_on_border``,
        severity ``warning``, message, hint and the figures in ``details``.
    """
    findings: list[dict[str, Any]] = []
    table = per_class[per_class["n"] >= FLAG_MIN_IMAGES].dropna(subset=["mean_border_share"])
    threshold = max(FLAG_MIN_MEAN, area_share + FLAG_ABOVE_UNIFORM)
    what = "class" if by == "label" else by
    for position, row in table.iterrows():
        mean = float(row["mean_border_share"])
        if mean <= threshold:
            continue
        others = per_class.drop(index=position)["mean_border_share"].dropna()
        reference = float(others.median()) if len(others) else None
        compared = (f"against {reference:.0%} for the other {'classes' if by == 'label' else 'values'} (median) "
                    if reference is not None else "against ")
        name = row[by]
        findings.append(Finding(
            "saliency_on_border", "warning",
            f"{what} {name!r}: on average {mean:.0%} of the model's Grad-CAM saliency lies in the outer "
            f"{margin:.0%} of the image ({row['share_above_half']:.0%} of its {int(row['n'])} images have "
            f"most of it there), {compared}and {area_share:.0%} for a uniform map: the model may recognise "
            f"{name!r} by something at the edges (a ruler, an ink mark, a frame) rather than by the object",
            count=int(row["n"]),
            hint="look at the saliency grid of the report for this class; crop or mask rulers, marks and frames "
                 "(or check how its images were acquired) and retrain",
            details={by: name if isinstance(name, (str, int, float)) else str(name),
                     "mean_border_share": round(mean, 4),
                     "others_median_border_share": None if reference is None else round(reference, 4),
                     "uniform_border_share": round(float(area_share), 4), "threshold": round(threshold, 4),
                     "margin": margin, "n": int(row["n"])}).to_dict())
    return findings


# -- Report gallery -------------------------------------------------------------------------
def gallery_picks(predictions: pd.DataFrame, classes: list[str], per_class: int = 4) -> pd.DataFrame:
    """The images of the saliency grid: per class, its most confident correct predictions and
    its most confident mistakes.

    Args:
        predictions: One row per image: ``path``, ``label`` (true class), ``predicted``,
            ``confidence`` (of the predicted class).
        classes: The classes, in the grid's order.
        per_class: Up to this many correct images and this many mistakes per true class.

    Returns:
        The picked rows (every column of ``predictions``) plus ``kind`` (``correct`` or
        ``mistake``), class by class, correct ones first, most confident first (ties: by path).
    """
    missing = [c for c in ("path", "label", "predicted", "confidence") if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions have no column {missing}")
    picked = []
    for name in classes:
        rows = predictions[predictions["label"].astype(str) == str(name)]
        correct = rows["predicted"].astype(str) == rows["label"].astype(str)
        for kind, subset in (("correct", rows[correct]), ("mistake", rows[~correct])):
            ordered = subset.assign(_path=subset["path"].astype(str)).sort_values(
                ["confidence", "_path"], ascending=[False, True], kind="mergesort").drop(columns="_path")
            picked.append(ordered.head(max(int(per_class), 0)).assign(kind=kind))
    columns = [*predictions.columns, "kind"]
    if not picked:
        return pd.DataFrame(columns=columns)
    return pd.concat(picked, ignore_index=True)[columns]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """The heat map blended over the image, for the report's grid.

    Args:
        image: (height, width), (height, width, 1) or (height, width, 3), values in [0, 255].
        heatmap: (height, width) in [0, 1] (:func:`grad_cam`); resized to the image if needed.
        alpha: The heat map's weight in the blend.
        colormap: A matplotlib colormap.

    Returns:
        uint8 (height, width, 3).
    """
    from matplotlib import colormaps

    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., np.newaxis], 3, axis=-1)
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise ValueError(f"image must be (height, width[, 1 or 3]), got shape {np.shape(image)}")
    pixels = np.clip(pixels[..., :3], 0, 255)
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if heat.shape != pixels.shape[:2]:
        from PIL import Image

        heat = np.asarray(Image.fromarray(heat).resize((pixels.shape[1], pixels.shape[0]),
                                                                  Image.Resampling.BILINEAR))
    colours = colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * pixels + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
