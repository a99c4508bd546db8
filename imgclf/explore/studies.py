"""Exploration studies: expanding points, and summarising their results.

A study varies its *scientific* parameters, re-tunes its *nuisance*
parameters for every scientific value (the same quasi-random nuisance samples
for each, so the comparison is fair) and keeps everything else *fixed*. Every
(scientific, nuisance) combination is a point, run as its own job. The
summary keeps, for each scientific value, the best point over its nuisance
values, and flags a best nuisance value on the edge of its range.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import qmc

from imgclf.core.config import check_model_config, set_dotted, validate_config
from imgclf.core.errors import ConfigError
from imgclf.core.objectives import is_better, with_resolved_monitor


@dataclass(frozen=True)
class Point:
    """One run of a study."""

    study: str
    id: str
    scientific: dict[str, Any]
    nuisance: dict[str, Any]

    @property
    def overrides(self) -> dict[str, Any]:
        return {**self.scientific, **self.nuisance}

    def label(self) -> str:
        return ", ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in self.overrides.items())


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def nuisance_samples(nuisance: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Every combination of listed nuisance values times the quasi-random ranges.

    Ranges are sampled together with a scrambled Halton sequence (seeded):
    ``samples`` points spread evenly over the box, log-uniform when
    ``scale`` is log.
    """
    listed = {k: v for k, v in nuisance.items() if isinstance(v, list)}
    ranges = {k: v for k, v in nuisance.items() if isinstance(v, dict)}
    drawn: list[dict[str, Any]] = [{}]
    if ranges:
        n = max(r.get("samples", 4) for r in ranges.values())
        unit = qmc.Halton(d=len(ranges), scramble=True, seed=seed).random(n)
        drawn = []
        for row in unit:
            sample = {}
            for u, (key, spec) in zip(row, ranges.items()):
                low, high = spec["min"], spec["max"]
                if spec.get("scale", "log") == "log":
                    value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
                else:
                    value = low + u * (high - low)
                sample[key] = int(round(value)) if spec.get("integer") else float(f"{value:.6g}")
            drawn.append(sample)
    combos = [dict(zip(listed, values)) for values in itertools.product(*listed.values())] or [{}]
    return [{**c, **d} for c in combos for d in drawn]


def expand_study(study: dict[str, Any], seed: int) -> list[Point]:
    """All points of a study, with stable ids ``p00``, ``p01``..."""
    scientific = study["scientific"]
    nuisance = nuisance_samples(study.get("nuisance", {}), seed)
    points = []
    for values in itertools.product(*scientific.values()):
        for sample in nuisance:
            points.append(Point(study["name"], f"p{len(points):02d}", dict(zip(scientific, values)), sample))
    return points


#: The data keys a study may vary: how the images are fed, not which images.
VARIABLE_DATA_KEYS = ("data.image_size",)


def point_config(config: dict[str, Any], study: dict[str, Any], point: Point) -> dict[str, Any]:
    """The config of one point: the study's fixed values, then the point's values."""
    result = copy.deepcopy(config)
    result["explore"] = {**result["explore"], "studies": []}  # a point does not recurse
    for key, value in {**study.get("fixed", {}), **point.overrides}.items():
        # The input size only changes how the images are fed; the rest of data, the split and the
        # seed define the images and folds every point must share.
        if key.split(".")[0] in ("explore", "split", "data", "validation", "seed") and key not in VARIABLE_DATA_KEYS:
            raise ConfigError(f"explore study {study['name']!r}: {key} cannot vary within a study",
                              "vary model.* or train.* keys, or data.image_size; the rest of data, the split "
                              "and the seed are shared by all points")
        try:
            set_dotted(result, key, value)
        except KeyError:
            raise ConfigError(f"explore study {study['name']!r}: {key!r} is not a config key",
                              "use dotted keys from config/config.schema.yaml, e.g. train.learning_rate") from None
    # Always record divergence: an exploding run is an answer, not a failure.
    result["train"]["on_divergence"] = "record"
    source = f"explore study {study['name']!r}, point {point.id}"
    validate_config(result, source=source)
    check_model_config(result, source=source)
    return with_resolved_monitor(result)


def check_studies(config: dict[str, Any]) -> None:
    """Check every study before any job: names unique, keys and values valid.

    Raises:
        ConfigError: Naming the study and the key at fault.
    """
    names = [s["name"] for s in config["explore"]["studies"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"explore.studies: the name(s) {duplicated} are used twice", "give each study its own name")
    for study in config["explore"]["studies"]:
        for key, spec in study.get("nuisance", {}).items():
            if isinstance(spec, dict):
                if spec["min"] >= spec["max"]:
                    raise ConfigError(f"explore study {study['name']!r}: nuisance {key} has min >= max",
                                      "give a range with min < max")
                if spec.get("scale", "log") == "log" and spec["min"] <= 0:
                    raise ConfigError(f"explore study {study['name']!r}: nuisance {key} is log-scaled but min <= 0",
                                      "use a positive min, or scale: linear")
        overlap = set(study["scientific"]) & set(study.get("nuisance", {}))
        if overlap:
            raise ConfigError(f"explore study {study['name']!r}: {sorted(overlap)} are both scientific and nuisance",
                              "a parameter is either studied or re-tuned, not both")
        for point in expand_study(study, config["seed"]):
            point_config(config, study, point)


def _better(a: float, b: float, objective: str) -> bool:
    return is_better(a, b, objective)


def summarize_study(study: dict[str, Any], points: list[Point], metrics: dict[str, dict[str, Any]],
                    objective: str) -> dict[str, Any]:
    """Best point per scientific value, over its nuisance values.

    Args:
        study: The study's config.
        points: Its points.
        metrics: Each point's metrics (``metrics.json``), by point id.
        objective: The validation metric that ranks the points (:mod:`imgclf.core.objectives`).

    Returns:
        ``rows`` (one per point: values, objective, status), ``best`` (one per
        scientific value), ``winner`` and ``edge_flags``.
    """
    rows = []
    for point in points:
        m = metrics[point.id]
        value = m.get("at_best_epoch", {}).get(objective)
        usable = m["status"] != "diverged" and value is not None and math.isfinite(value)
        rows.append({"point": point.id, **point.scientific, **point.nuisance,
                     objective: value if usable else None, "status": m["status"],
                     "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run"),
                     "seconds": m.get("seconds")})
    best: list[dict[str, Any]] = []
    flags: list[str] = []
    scientific_keys = list(study["scientific"])
    ranges = {k: v for k, v in study.get("nuisance", {}).items() if isinstance(v, dict)}
    for values in itertools.product(*study["scientific"].values()):
        group = [r for r in rows if all(r[k] == v for k, v in zip(scientific_keys, values))]
        scored = [r for r in group if r[objective] is not None]
        entry: dict[str, Any] = {**dict(zip(scientific_keys, values)), "n_points": len(group),
                                 "n_diverged": sum(r["status"] == "diverged" for r in group)}
        if not scored:
            entry.update({"point": None, objective: None})
            flags.append(f"{_describe(dict(zip(scientific_keys, values)))}: every point diverged or failed")
            best.append(entry)
            continue
        top = scored[0]
        for r in scored[1:]:
            if _better(r[objective], top[objective], objective):
                top = r
        entry.update({"point": top["point"], objective: top[objective],
                      **{k: top[k] for k in study.get("nuisance", {})}})
        for key in ranges:
            tried = sorted(r[key] for r in group)
            if len(tried) >= 2 and top[key] in (tried[0], tried[-1]):
                side = "lowest" if top[key] == tried[0] else "highest"
                flags.append(f"{_describe(dict(zip(scientific_keys, values)))}: the best {key} "
                             f"({_fmt(top[key])}) is the {side} value tried, so the optimum may lie beyond it; "
                             f"widen the range ({_fmt(ranges[key]['min'])} - {_fmt(ranges[key]['max'])}) or add samples on that side")
        best.append(entry)
    candidates = [b for b in best if b[objective] is not None]
    winner = None
    if candidates:
        winner = candidates[0]
        for b in candidates[1:]:
            if _better(b[objective], winner[objective], objective):
                winner = b
    return {"study": study["name"], "question": study["question"], "objective": objective,
            "scientific": scientific_keys, "nuisance": list(study.get("nuisance", {})),
            "fixed": study.get("fixed", {}), "rows": rows, "best": best, "winner": winner,
            "edge_flags": flags}


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def answer(summary: dict[str, Any]) -> str:
    """One sentence answering the study's question."""
    winner = summary["winner"]
    if winner is None:
        return "No point finished without diverging: no answer."
    objective = summary["objective"]
    sci = _describe({k: winner[k] for k in summary["scientific"]})
    nui = _describe({k: winner[k] for k in summary["nuisance"]})
    text = f"Best: {sci}" + (f" with {nui}" if nui else "") + f" ({objective} {winner[objective]:.4f})."
    others = [b for b in summary["best"] if b is not winner and b[objective] is not None]
    if others:
        text += " Others at their best: " + "; ".join(
            f"{_describe({k: b[k] for k in summary['scientific']})}: {b[objective]:.4f}" for b in others) + "."
    return text


def points_table_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown (question, answer, best per value, flags, all points)."""
    objective = summary["objective"]
    keys = summary["scientific"] + summary["nuisance"]
    lines = [f"# Study `{summary['study']}`", "", f"**Question:** {summary['question']}", "",
             f"**Answer:** {answer(summary)}", ""]
    if summary["fixed"]:
        lines += ["Fixed for this study: " + _describe(summary["fixed"]), ""]
    lines += ["## Best per scientific value", "", "| " + " | ".join(keys + [objective, "point"]) + " |",
              "|" + "---|" * (len(keys) + 2)]
    for b in summary["best"]:
        lines.append("| " + " | ".join(_fmt(b.get(k)) for k in keys)
                     + f" | {_fmt(b[objective]) if b[objective] is not None else 'n/a'} | {b['point']} |")
    if summary["edge_flags"]:
        lines += ["", "## Flags", ""] + [f"- {f}" for f in summary["edge_flags"]]
    lines += ["", "## All points", "", "| point | " + " | ".join(keys) + f" | {objective} | status | epochs |",
              "|" + "---|" * (len(keys) + 4)]
    for r in summary["rows"]:
        lines.append(f"| {r['point']} | " + " | ".join(_fmt(r[k]) for k in keys)
                     + f" | {_fmt(r[objective]) if r[objective] is not None else 'n/a'} | {r['status']} | {r['epochs_run']} |")
    return "\n".join(lines) + "\n"
