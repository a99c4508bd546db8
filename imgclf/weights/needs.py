"""Which backbones a run trains on ImageNet weights (read at every workflow load: no TensorFlow)."""

from __future__ import annotations

from typing import Any


def pretrained_architectures(config: dict[str, Any]) -> list[str]:
    """Every backbone a run may train with ImageNet weights: the model's, and any an exploration
    study or the tuning search space can choose."""
    model = config["model"]
    if model["weights"] != "imagenet":
        return []
    chosen = {model["architecture"]}
    for study in config.get("explore", {}).get("studies", []):
        for section in ("scientific", "nuisance", "fixed"):
            values = study.get(section, {}).get("model.architecture")
            if isinstance(values, list):
                chosen.update(values)
            elif isinstance(values, str):
                chosen.add(values)
    for parameter in config.get("tune", {}).get("search_space", []) if config.get("tune", {}).get("enabled") else []:
        if parameter.get("name") == "model.architecture":
            chosen.update(parameter.get("values", []))
    return sorted(a for a in chosen if a != "small_cnn")
