"""The ensemble of the final models: one Keras model that averages their class probabilities.

Call :func:`imgclf.core.runtime.configure` before importing this module (it imports TensorFlow).

Each member keeps its own weights inside the ensemble, as a sub-model named ``seed_<seed>``; the
ensemble's output is the mean of the members' softmax outputs. Being one model, it is saved,
loaded, exported to TFLite and predicted like any other; :func:`ensemble_members` finds the
members again (the drift monitor joins their embeddings, saliency maps average theirs).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from imgclf.core.errors import ImgclfError

#: The prefix of a member's name inside an ensemble (``seed_<seed>``).
MEMBER_PREFIX = "seed_"


def build_ensemble(members: Sequence[keras.Model], seeds: Sequence[int]) -> keras.Model:
    """One model averaging the members' probabilities (in the members' order).

    Args:
        members: The final models (same input shape and classes).
        seeds: Their seeds (each member is named ``seed_<seed>``).

    Raises:
        ImgclfError: Fewer than two members, or members of different inputs or classes.
    """
    if len(members) < 2:
        raise ImgclfError(f"an ensemble needs at least 2 final models, there is {len(members)}",
                          "set final.n_seeds to 2 or more, or evaluation.deploy to median_validation")
    shapes = {tuple(m.inputs[0].shape[1:]) for m in members}
    outputs = {int(m.outputs[0].shape[-1]) for m in members}
    if len(shapes) != 1 or len(outputs) != 1:
        raise ImgclfError(f"the final models differ in input shape {sorted(shapes)} or classes {sorted(outputs)}: "
                          "they cannot be averaged", "train every final model from the same config")
    image = keras.Input(shape=shapes.pop(), name="image")
    probabilities = []
    for model, seed in zip(members, seeds):
        model.name = f"{MEMBER_PREFIX}{seed}"
        probabilities.append(model(image))
    return keras.Model(image, keras.layers.Average(name="probabilities")(probabilities), name="ensemble")


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The members of an ensemble built by :func:`build_ensemble` (empty for a single model)."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)]
