"""The model card of the deployed model (Mitchell et al., *Model Cards for Model Reporting*, FAT* 2019).

Pure functions over the run's JSON results: the deployed model (``model.json``),
the test evaluation over seeds (``evaluate/summary.json``), the split and data
validation, the bias audit (``audit/data.json``, ``audit/groups.json``), the
carbon report and, when enabled, the TFLite export. The card has one section
per heading of the paper that the pipeline can fill: model details, intended
use, data, metrics with intervals, per-group results, carbon cost, the exported
formats, and limitations (those the pipeline finds, then the user's).
"""

from __future__ import annotations

from typing import Any

from imgclf.core.errors import ImgclfError
from imgclf.export.formats import FORMATS

#: The card's sections, in order (JSON keys and Markdown headings).
SECTIONS = ("model_details", "intended_use", "data", "metrics", "per_group", "carbon", "export", "limitations")
#: Headline metrics reported with their interval over the final models.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece")
REFERENCE = ("Mitchell, Wu, Zaldivar, Barnes, Vasserman, Hutchinson, Spitzer, Raji and Gebru, "
             "Model Cards for Model Reporting, FAT* 2019")


def _interval(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {k: entry.get(k) for k in ("mean", "std", "low", "high", "n")}


def model_details(deployed: dict[str, Any], model_file: str, sha256: str, n_bytes: int, date: str,
                  tensorflow: str | None = None) -> dict[str, Any]:
    """Architecture, weights, training settings, the deployed seed and the file's identity.

    Raises:
        ImgclfError: ``model.keras`` is not the file ``deploy_model`` recorded.
    """
    if deployed.get("sha256") and deployed["sha256"] != sha256:
        raise ImgclfError(f"{model_file} is not the model deploy_model recorded (their sha256 differ)",
                          "rerun the deployment: snakemake --forcerun deploy_model")
    config = deployed["config"]
    model, train = config["model"], config["train"]
    return {
        "name": f"imgclf {model['architecture']} classifier of {len(deployed['classes'])} classes",
        "architecture": model["architecture"],
        "backbone_weights": model["weights"],
        "model": model,
        "training": {k: train.get(k) for k in ("optimizer", "learning_rate", "weight_decay", "batch_size", "epochs",
                                              "early_stopping", "reduce_lr", "augmentation", "class_weights",
                                              "fine_tune")},
        "deployed_seed": deployed["chosen"]["seed"],
        "ensemble_of": deployed.get("members"),
        "chosen_by": deployed["chosen"]["rule"],
        "why": deployed["chosen"]["why"],
        "validation": {"monitor": deployed["chosen"].get("monitor"), "value": deployed["chosen"].get("value")},
        "fold": deployed["fold"],
        "classes": deployed["classes"],
        "input": {"image_size": deployed["image_size"], "channels": deployed["channels"],
                  "description": deployed.get("input")},
        "file": model_file,
        "sha256": sha256,
        "bytes": n_bytes,
        "date": date,
        "tensorflow": tensorflow,
        "card_reference": REFERENCE,
    }


def intended_use(text: str, classes: list[str]) -> dict[str, Any]:
    """The user's statement of intended use, with what the model can and cannot answer."""
    return {"description": " ".join(text.split()),
            "classes": classes,
            "out_of_scope": (f"images of other classes than {', '.join(classes)} (the model always answers one "
                             "of them), and images taken differently from the training data (another device, "
                             "site, population or preparation); see the limitations")}


def data_section(deployed: dict[str, Any], split: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    """Where the data comes from, the counts per set for the deployed model, the validation summary."""
    source = deployed["config"]["data"]
    fold = deployed["fold"]
    folds = split.get("folds", [])
    counts = {"test": split.get("test")}
    if fold < len(folds):
        counts = {"train": folds[fold]["train"], "val": folds[fold]["val"], **counts}
    summary = validation.get("summary", {})
    return {
        "source": source["source"],
        "location": source.get("root") or source.get("manifest") or ("scikit-learn's embedded digits"
                                                                     if source["source"] == "digits" else None),
        "classes": split.get("classes"),
        "n_images": split.get("n_images"),
        "counts": counts,
        "split": {"options": split.get("options"), "leak_check": split.get("leak_check"),
                  "test_fraction_achieved": split.get("test_fraction_achieved"),
                  "n_near_duplicate_pairs": split.get("n_near_duplicate_pairs"), "warnings": split.get("warnings", [])},
        "validation": {
            "passed": validation.get("passed"),
            "counts": validation.get("counts"),
            **{k: summary.get(k) for k in ("n_listed", "n_usable", "n_bad", "n_dropped", "imbalance_ratio", "modes",
                                           "formats", "width", "height")},
            "findings": [{k: f.get(k) for k in ("severity", "code", "message")}
                         for f in validation.get("findings", [])],
        },
    }


def metrics_section(evaluation: dict[str, Any], deployed: dict[str, Any]) -> dict[str, Any]:
    """Test metrics over the final models with their intervals, the deployed model's own, the targets."""
    aggregate = evaluation["aggregate"]
    per_class = {}
    for name in evaluation.get("classes", []):
        per_class[name] = {key: _interval(aggregate.get(f"per_class.{name}.{key}"))
                           for key in ("precision", "recall", "f1")}
    return {
        "confidence": evaluation["confidence"],
        "interval": "Student-t interval of the mean over the final models (one per seed)",
        "seeds": evaluation["seeds"],
        "n_test": evaluation["n_test"],
        "over_seeds": {name: _interval(aggregate.get(name)) for name in HEADLINE if name in aggregate},
        "per_class": per_class,
        "deployed_model": deployed.get("test"),
        # With evaluation.deploy: ensemble, the deployed model is the ensemble: its targets, one by one.
        "ensemble_targets": (evaluation.get("ensemble") or {}).get("targets"),
        "targets": [{k: t.get(k) for k in ("metric_name", "description", "min", "max", "mean", "low", "high", "met",
                                           "met_with_confidence")} for t in evaluation["targets"]],
        "all_targets_met": evaluation["all_targets_met"],
        "all_targets_met_with_confidence": evaluation["all_targets_met_with_confidence"],
        "test_set_reevaluations": len(evaluation.get("reevaluations", [])),
        # The deployed model's operating thresholds, chosen on its validation images (evaluate stage).
        "operating_thresholds": deployed.get("operating_thresholds"),
    }


def per_group_section(audit_groups: dict[str, Any], audit_data: dict[str, Any], seed: int) -> dict[str, Any]:
    """Per audited column: the gap of the audit's metric (mean over models, and the deployed model's
    with its bootstrap interval) and the deployed model's metric per group with intervals."""
    metric = audit_groups["metric"]
    deployed = audit_groups["per_seed"].get(str(seed), {})
    columns = {}
    for column, entry in audit_groups["summary"].items():
        result = deployed.get(column, {})
        gap = result.get("gaps", {}).get(metric)
        columns[column] = {
            "mean_difference": entry.get("mean_difference"),
            "worst_group_most_often": entry.get("worst_group"),
            "too_small": entry.get("too_small", []),
            "deployed_gap": None if gap is None else {
                k: gap.get(k) for k in ("difference", "difference_low", "difference_high", "ratio", "best_group",
                                        "worst_group", "best", "worst")},
            "groups": [{"group": g["group"], "n": g["n"], "judged": g["judged"], "value": g.get(metric),
                        "low": g.get(f"{metric}_low"), "high": g.get(f"{metric}_high")}
                       for g in result.get("groups", [])],
        }
    some = next(iter(deployed.values()), {})
    return {"metric": metric, "min_group_size": some.get("min_group_size"), "confidence": some.get("confidence"),
            "columns": columns, "findings": audit_groups.get("findings", []),
            "data_findings": audit_data.get("findings", [])}


def carbon_section(carbon: dict[str, Any]) -> dict[str, Any]:
    """Energy, emissions and water of the run, and whether they were measured or estimated."""
    kinds = {part: entry["kind"] for part, entry in carbon.get("measures", {}).items()}
    used = {k for k in kinds.values() if k != "none"}
    how = "measured" if used == {"measured"} else "estimated" if used <= {"estimated"} else "partly measured"
    total = carbon["total"]
    return {
        "kwh": total["kwh"], "kg_co2eq": total["kg_co2eq"], "litres": total["litres"],
        "seconds": total["seconds"], "attempts": total["attempts"],
        "per_stage": [{k: s.get(k) for k in ("stage", "kwh", "kg_co2eq", "litres", "seconds")}
                      for s in carbon.get("stages", [])],
        "how": how, "measures": kinds, "intensity": carbon.get("intensity"), "pue": carbon.get("pue"),
        "water_litres_per_kwh": carbon.get("water_litres_per_kwh"),
        "energy_per_point": carbon.get("energy_per_point"),
        "scope": ("every attempt of every job that trains or predicts (exploration, tuning, final trainings, test "
                  "evaluation); not data preparation, export or reporting"),
    }


def export_section(export: dict[str, Any] | None) -> dict[str, Any]:
    """The TFLite formats against the Keras model (``{"enabled": False}`` without an export)."""
    if export is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "keras": {k: export["keras"].get(k) for k in ("bytes", "accuracy", "latency_ms")},
        "formats": {fmt: {k: e.get(k) for k in ("file", "bytes", "sha256", "accuracy", "delta", "agreement_with_keras",
                                               "max_abs_probability_diff", "latency_ms")}
                    for fmt, e in export["formats"].items()},
        "latency": export.get("latency"),
        "findings": export.get("findings", []),
    }


def limitations(metrics: dict[str, Any], per_group: dict[str, Any], export: dict[str, Any],
                user: list[str]) -> list[dict[str, str]]:
    """The limitations the pipeline finds (targets, intervals, group gaps, spurious correlations,
    quantization losses, the single test set), then the user's (``export.limitations``)."""
    found: list[dict[str, str]] = []
    level = f"{100 * metrics['confidence']:.0f}%"

    def add(kind: str, text: str) -> None:
        found.append({"kind": kind, "text": text})

    for t in metrics["targets"]:
        bound = " and ".join(x for x in (f">= {t['min']}" if t.get("min") is not None else "",
                                         f"<= {t['max']}" if t.get("max") is not None else "") if x)
        interval = "" if t.get("low") is None else f", {level} interval [{t['low']:.4f}, {t['high']:.4f}]"
        if not t["met"]:
            add("target", f"target not met: {t['metric_name']} {bound}; mean over seeds {t['mean']:.4f}{interval}")
        elif not t["met_with_confidence"]:
            add("target", f"target met on average but not with confidence: {t['metric_name']} {bound}; mean "
                          f"{t['mean']:.4f}{interval}")
    if len(metrics["seeds"]) < 3:
        add("intervals", f"the intervals come from {len(metrics['seeds'])} final model(s) only: they are wide or "
                         "undefined")
    if metrics["test_set_reevaluations"]:
        add("test set", "the sealed test set was evaluated again after upstream decisions changed: the test "
                        "figures are no longer an unbiased estimate")
    for finding in per_group["findings"]:
        add("group gap", f"bias audit ({finding['severity']}): {finding['message']}")
    for finding in per_group["data_findings"]:
        add("data", f"data audit ({finding['severity']}): {finding['message']}")
    for column, entry in per_group["columns"].items():
        if entry["too_small"]:
            add("group size", f"{column}: groups {', '.join(map(str, entry['too_small']))} have fewer than "
                              f"{per_group['min_group_size']} test images: their performance is not judged")
    for finding in export.get("findings", []):
        add("quantization", f"export: {finding['message']}")
    add("evaluation", f"evaluated on one test set ({metrics['n_test']} images) drawn from the same source as the "
                      "training data: performance on images from other devices, sites or populations is unknown")
    for text in user:
        add("user", " ".join(text.split()))
    return found


def build_model_card(deployed: dict[str, Any], model_file: str, sha256: str, n_bytes: int,
                     evaluation: dict[str, Any],
                     split: dict[str, Any], validation: dict[str, Any], audit_data: dict[str, Any],
                     audit_groups: dict[str, Any], carbon: dict[str, Any], export: dict[str, Any] | None,
                     intended: str, user_limitations: list[str], date: str) -> dict[str, Any]:
    """The model card as a dict with one key per :data:`SECTIONS` entry.

    Args:
        deployed: The deployed model's record (rule deploy_model's ``card``).
        model_file: The deployed model's file, as the card names it.
        sha256, n_bytes: Of that file as read now.
        evaluation: The test summary (rule evaluation_summary).
        split: The split's summary. validation: The data validation's result.
        audit_data, audit_groups: The two audits' results.
        carbon: The carbon summary.
        export: The export's measurements, or None when the export is off.
        intended: ``export.intended_use``.
        user_limitations: ``export.limitations``.
        date: The card's date (ISO).

    Raises:
        ImgclfError: The model file is not the one deployed.
    """
    metrics = metrics_section(evaluation, deployed)
    groups = per_group_section(audit_groups, audit_data, deployed["chosen"]["seed"])
    exported = export_section(export)
    return {
        "model_details": model_details(deployed, model_file, sha256, n_bytes, date, (export or {}).get("tensorflow")),
        "intended_use": intended_use(intended, deployed["classes"]),
        "data": data_section(deployed, split, validation),
        "metrics": metrics,
        "per_group": groups,
        "carbon": carbon_section(carbon),
        "export": exported,
        "limitations": limitations(metrics, groups, exported, user_limitations),
    }


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _range(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("low") is None:
        return "n/a"
    return f"[{_num(entry['low'])}, {_num(entry['high'])}]"


def model_card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown, one heading per section."""
    d, use, data, m, g, c, e = (card[k] for k in SECTIONS[:-1])
    level = f"{100 * m['confidence']:.0f}%"
    lines = [f"# Model card: {d['name']}", "",
             f"In the form of {d['card_reference']}. Date: {d['date']}.", "",
             "## Model details", "",
             f"- Architecture: {d['architecture']}; backbone weights: {d['backbone_weights']}",
             f"- Training: {d['training']['optimizer']}, learning rate {d['training']['learning_rate']}, "
             f"batch size {d['training']['batch_size']}, up to {d['training']['epochs']} epochs",
             (f"- Deployed: the ensemble of the final models of seeds {', '.join(map(str, d['ensemble_of']))}: {d['why']}"
              if d.get("ensemble_of") else
              f"- Deployed: the final model of seed {d['deployed_seed']} (fold {d['fold']}), chosen by "
              f"{d['chosen_by']}: {d['why']}"),
             f"- Input: {d['input']['image_size'][0]}x{d['input']['image_size'][1]} pixels, "
             f"{d['input']['channels']} channel(s); {d['input']['description']}",
             f"- File: `{d['file']}`, {d['bytes']} bytes, sha256 `{d['sha256']}`",
             "", "## Intended use", "", use["description"], "",
             f"Out of scope: {use['out_of_scope']}.", "",
             "## Data", "",
             f"Source: {data['source']} ({data['location']}); {data['n_images']} usable images, classes "
             f"{', '.join(map(str, data['classes'] or []))}.", "",
             "| set | images |", "|---|---|"]
    lines += [f"| {name} | {counts.get('total') if counts else 'n/a'} |" for name, counts in data["counts"].items()]
    v = data["validation"]
    lines += ["", f"Validation: {'passed' if v['passed'] else 'FAILED'}; {v['n_bad']} unusable and {v['n_dropped']} "
                  f"dropped of {v['n_listed']} files; class imbalance ratio {_num(v['imbalance_ratio'], 2)}; split leak "
                  f"check {data['split']['leak_check']}."]
    lines += [f"- {f['severity']}: {f['message']}" for f in v["findings"]]
    lines += ["", "## Metrics", "",
              f"Test set of {m['n_test']} images; mean over {len(m['seeds'])} final models (seeds "
              f"{', '.join(map(str, m['seeds']))}) with the {level} {m['interval']}; the deployed model's own in the "
              "last column.", "",
              f"| metric | mean | {level} interval | deployed model{' (the ensemble)' if m.get('ensemble_targets') else ''} |",
              "|---|---|---|---|"]
    deployed = m["deployed_model"] or {}
    for name, entry in m["over_seeds"].items():
        lines.append(f"| {name} | {_num(entry['mean'])} | {_range(entry)} | {_num(deployed.get(name))} |")
    if m["targets"]:
        lines += ["", "| target | mean | interval | met | met with confidence |", "|---|---|---|---|---|"]
        for t in m["targets"]:
            bound = " and ".join(x for x in (f">= {t['min']}" if t.get("min") is not None else "",
                                             f"<= {t['max']}" if t.get("max") is not None else "") if x)
            lines.append(f"| {t['metric_name']} {bound} | {_num(t['mean'])} | {_range(t)} | "
                         f"{'yes' if t['met'] else '**no**'} | {'yes' if t['met_with_confidence'] else '**no**'} |")
    for t in m.get("ensemble_targets") or []:
        lines.append(f"- the ensemble on target {t['metric_name']}: {_num(t['value'])} -> "
                     f"{'met' if t['met'] else '**not met**'}")
    thresholds = (m.get("operating_thresholds") or {}).get("classes") or []
    if thresholds:
        applied = m["operating_thresholds"].get("applied")
        lines += ["", "Operating thresholds of the deployed model, chosen on its validation images to meet a "
                  "sensitivity target (predict the class as soon as its probability reaches the threshold; "
                  + ("applied to the test figures of the evaluation summary" if applied else
                     "not applied to the figures above") + "):", "",
                  "| class | target | threshold | test sensitivity (plain -> thresholded) | "
                  "test specificity (plain -> thresholded) |", "|---|---|---|---|---|"]
        for t in thresholds:
            shifted = t["test"]["thresholded"] or t["test"]["plain"]
            lines.append(f"| {t['class']} | >= {t['min']} | "
                         f"{_num(t['threshold'], 3) if t['threshold'] is not None else 'none needed'} | "
                         f"{_num(t['test']['plain']['sensitivity'])} -> {_num(shifted['sensitivity'])} | "
                         f"{_num(t['test']['plain']['specificity'])} -> {_num(shifted['specificity'])} |")
    lines += ["", "## Per-group results", "",
              f"{g['metric']} of the deployed model per group of each audited column (bootstrap {level} intervals); "
              f"the gap is best minus worst judged group (at least {g['min_group_size']} test images).", "",
              "| column | gap (deployed) | interval | worst group (deployed) | mean gap over models | "
              "worst group most often |", "|---|---|---|---|---|---|"]
    for column, entry in g["columns"].items():
        gap = entry["deployed_gap"]
        interval = "n/a" if not gap or gap.get("difference_low") is None else \
            f"[{_num(gap['difference_low'])}, {_num(gap['difference_high'])}]"
        lines.append(f"| {column} | {_num(gap['difference']) if gap else 'n/a'} | {interval} | "
                     f"{(gap or {}).get('worst_group') or 'n/a'} | {_num(entry['mean_difference'])} | "
                     f"{entry['worst_group_most_often'] or 'n/a'} |")
    lines += ["", "| column | group | n | value | interval |", "|---|---|---|---|---|"]
    for column, entry in g["columns"].items():
        for row in entry["groups"]:
            star = "" if row["judged"] else " (too small)"
            lines.append(f"| {column} | {row['group']}{star} | {row['n']} | {_num(row['value'])} | {_range(row)} |")
    lines += ["", "## Carbon cost", "",
              f"{c['kwh']:.4g} kWh, {c['kg_co2eq']:.4g} kg CO2eq, {c['litres']:.4g} L of water over {c['attempts']} "
              f"job attempts ({c['seconds']:.0f} s of job time); {c['how']} "
              f"({', '.join(f'{k}: {v}' for k, v in c['measures'].items())}); intensity: "
              f"{'; '.join(c['intensity'] or [])}. Scope: {c['scope']}."]
    lines += ["", "## Export", ""]
    if not e["enabled"]:
        lines.append("No TFLite export (export.enabled is false).")
    else:
        lines += ["| model | size (KiB) | accuracy | delta vs Keras | agreement | latency median (ms) |",
                  "|---|---|---|---|---|---|",
                  f"| Keras | {e['keras']['bytes'] / 1024:.1f} | {_num(e['keras']['accuracy'])} | - | - | "
                  f"{e['keras']['latency_ms']['median']:.3f} |"]
        for fmt, f in sorted(e["formats"].items(), key=lambda item: FORMATS.index(item[0])):
            lines.append(f"| TFLite {fmt} | {f['bytes'] / 1024:.1f} | {_num(f['accuracy'])} | {f['delta']:+.4f} | "
                         f"{_num(f['agreement_with_keras'])} | {f['latency_ms']['median']:.3f} |")
    lines += ["", "## Limitations", ""] + [f"- {item['text']}" for item in card["limitations"]]
    return "\n".join(lines) + "\n"
