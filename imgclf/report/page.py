"""One self-contained HTML report of a run, for a reviewer with a browser.

:func:`build_report` reads the files the rules declared (JSON, CSV, PNG) and
returns one HTML page: figures embedded as data URIs, no script, no external
resource, so the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from imgclf.core.config import config_sha256 as config_hash
from imgclf.report.deployment import drift_section, export_section
from imgclf.core.io import read_json
from imgclf.evaluate import GLOBAL_METRICS, LABEL_CHECK
from imgclf.report.html_parts import as_list, esc, figure, fmt, table, verdict
from imgclf.report.diagnosis import (EXPLODED_CHANGE, FROZEN_CHANGE, MATERIAL_SHARE, OVERFIT_EPOCHS, OVERFIT_GAP,
                                     OVERFIT_RISE,
                                     changes_from_weight_samples, data_findings, diagnose_run,
                                     label_findings, saliency_findings)

SECTIONS = (
    ("summary", "At a glance"),
    ("config", "Configuration"),
    ("data", "Data validation"),
    ("split", "Split"),
    ("exploration", "Exploration"),
    ("tuning", "Tuning"),
    ("training", "Final trainings and diagnosis"),
    ("test", "Test evaluation"),
    ("audit", "Bias audit"),
    ("carbon", "Carbon and water"),
    ("deployment", "Deployment: TFLite export and model card"),
    ("drift", "Drift monitoring"),
    ("environment", "Environment"),
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232b;line-height:1.45}
header{background:#1f3b57;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:1.5em}
header p{margin:2px 0;opacity:.9;font-size:.92em}
nav{position:sticky;top:0;background:#f3f5f8;border-bottom:1px solid #d5dbe3;padding:6px 28px;z-index:2;
font-size:.9em}nav a{margin-right:14px;color:#1f3b57;text-decoration:none}nav a:hover{text-decoration:underline}
main{padding:8px 28px 40px;max-width:1180px}section{border-bottom:1px solid #e3e7ec;padding-bottom:14px}
h2{color:#1f3b57;margin-top:26px}h3{margin-bottom:6px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.88em}
th,td{border:1px solid #d5dbe3;padding:3px 8px;text-align:left;vertical-align:top}th{background:#eef2f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #e3e7ec;margin:6px 0}
.ok{color:#1b7f3b;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#a15c00;font-weight:600}
.note{color:#5a6572;font-size:.9em}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0}
.card{border:1px solid #d5dbe3;border-radius:6px;padding:10px 14px;min-width:200px;background:#fafbfc}
.card b{display:block;font-size:1.25em}.action{background:#fff7e6;border-left:4px solid #e0a100;padding:8px 12px}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:.82em;max-height:420px}
details{margin:6px 0}summary{cursor:pointer;color:#1f3b57}
"""


# -- sections ------------------------------------------------------------------
def _summary(ctx: dict[str, Any]) -> str:
    evaluation, carbon, card = ctx["evaluation"], ctx["carbon"], ctx["model"]
    cards = []
    if evaluation:
        accuracy = evaluation["aggregate"]["accuracy"]
        cards.append(f"<div class='card'>Test accuracy ({len(evaluation['seeds'])} final models)"
                     f"<b>{fmt(accuracy['mean'])} ± {fmt(accuracy['std'], 2)}</b>"
                     f"<span class='note'>{100 * evaluation['confidence']:.0f}% interval "
                     f"[{fmt(accuracy['low'])}, {fmt(accuracy['high'])}]</span></div>")
        targets = evaluation["targets"]
        cards.append(f"<div class='card'>Targets<b>{verdict(evaluation['all_targets_met'], 'all met', 'NOT all met')}"
                     f"</b><span class='note'>{sum(bool(t['met']) for t in targets)} of {len(targets)} met; "
                     f"{sum(bool(t['met_with_confidence']) for t in targets)} with confidence</span></div>")
    if card:
        deployed = (f"ensemble of {len(card['members'])}" if card.get("members")
                    else f"seed {esc(card['chosen']['seed'])}")
        cards.append(f"<div class='card'>Deployed model<b>{deployed}</b>"
                     f"<span class='note'>{esc(card['chosen']['rule'])} by {esc(card['chosen'].get('monitor'))}"
                     + (f" ({esc(card['chosen']['why_metric'])})" if card["chosen"].get("why_metric") else "")
                     + "</span></div>")
    if carbon and carbon.get("total"):
        total = carbon["total"]
        cards.append(f"<div class='card'>Energy, all jobs<b>{total['kwh'] * 1000:.3g} Wh</b>"
                     f"<span class='note'>{total['kg_co2eq'] * 1000:.3g} g CO2eq, {total['litres'] * 1000:.3g} mL "
                     f"water</span></div>")
    overall = ctx.get("overall_diagnosis")
    action = (f"<p class='action'><b>Next action</b> ({esc(overall['reason'])}): {esc(overall['next_action'])}</p>"
              if overall else "")
    unsealed = ""
    if evaluation and evaluation.get("reevaluations"):
        unsealed = ("<p class='bad'>The sealed test set was evaluated again after changes: see the test "
                    "evaluation section.</p>")
    return f"<div class='cards'>{''.join(cards)}</div>{action}{unsealed}"


def _config(ctx: dict[str, Any]) -> str:
    config = ctx["config"]
    origin = ctx["environment"].get("config_origin") or {}
    origin_line = ""
    if origin:
        keys = origin.get("keys_set") or []
        origin_line = (f"<p>Read from {esc(origin.get('files'))}, which sets {len(keys)} keys: "
                       f"<code>{esc(', '.join(keys) or 'none')}</code>. Every other key takes the schema's "
                       "default (see the whole configuration below).</p>")
    return (f"<p>SHA-256 of the validated configuration (canonical JSON): <code>{config_hash(config)}</code>. "
            f"Seed {esc(config['seed'])}; final seeds {esc(', '.join(map(str, ctx['seeds'])))}.</p>{origin_line}"
            f"<details><summary>The whole configuration, defaults filled in</summary><pre>"
            f"{esc(yaml.safe_dump(config, sort_keys=False))}</pre></details>")


def _data(ctx: dict[str, Any]) -> str:
    validation = ctx["validation"] or {}
    summary = validation.get("summary", {})
    facts = [{"images listed": summary.get("n_listed"), "usable": summary.get("n_usable"),
              "bad": summary.get("n_bad"), "dropped": summary.get("n_dropped"),
              "imbalance ratio": summary.get("imbalance_ratio"),
              "modes": ", ".join(f"{k}: {v}" for k, v in summary.get("modes", {}).items()),
              "formats": ", ".join(f"{k}: {v}" for k, v in summary.get("formats", {}).items()),
              "width (min/median/max)": "/".join(fmt(summary.get("width", {}).get(k))
                                                 for k in ("min", "median", "max")),
              "height (min/median/max)": "/".join(fmt(summary.get("height", {}).get(k))
                                                  for k in ("min", "median", "max"))}]
    classes = [{"class": k, "images": v} for k, v in summary.get("classes", {}).items()]
    findings = [{"severity": f.get("severity"), "code": f.get("code"), "count": f.get("count"),
                 "message": f.get("message"), "what to do": f.get("hint", "")}
                for f in validation.get("findings", [])]
    return (table(facts) + "<h3>Classes</h3>" + table(classes) + "<h3>Findings</h3>" + table(findings)
            + "<h3>Random samples per class</h3>"
            + figure(ctx["inputs"].get("samples_plot"), "sample images per class"))


def _split(ctx: dict[str, Any]) -> str:
    split = ctx["split"] or {}
    classes = split.get("classes", [])
    rows = [{"set": "test", **{c: split.get("test", {}).get(c) for c in classes},
             "total": split.get("test", {}).get("total")}]
    for k, fold in enumerate(split.get("folds", [])):
        for part in ("train", "val"):
            rows.append({"set": f"fold {k} {part}", **{c: fold[part].get(c) for c in classes},
                         "total": fold[part].get("total")})
    options = split.get("options", {})
    text = (f"<p>{esc(split.get('n_images'))} images in {esc(split.get('n_split_units'))} split units "
            f"(group column: {esc(options.get('group_column') or 'none')}; near-duplicate pairs kept together: "
            f"{esc(split.get('n_near_duplicate_pairs'))}); leak check: "
            f"{verdict(split.get('leak_check') == 'passed', 'passed', str(split.get('leak_check')))}; "
            f"seed {esc(options.get('seed'))}.</p>")
    groups = ""
    representation = ctx["inputs"].get("representation")
    if representation and Path(representation).is_file():
        table_ = pd.read_csv(representation, dtype={"group": str})
        if not table_.empty:
            pivot = table_.pivot_table(index=["column", "group"], columns="set", values="count", aggfunc="sum",
                                       fill_value=0).reset_index()
            groups = ("<h3>Groups per set</h3><p class='note'>Metadata columns and image slices; test images are "
                      "counted, their labels not read.</p>" + table(pivot.to_dict("records")))
    return text + "<h3>Images per class and set</h3>" + table(rows) + groups


def _exploration(ctx: dict[str, Any]) -> str:
    parts = []
    for study in ctx["studies"]:
        summary = study["summary"]
        flags = "".join(f"<li class='warn'>{esc(f)}</li>" for f in summary.get("edge_flags", []))
        points = pd.read_csv(study["points"]).to_dict("records") if study.get("points") else []
        parts.append(f"<h3>Study {esc(summary['study'])}</h3><p><b>Question:</b> {esc(summary['question'])}<br>"
                     f"<b>Answer:</b> {esc(summary['answer'])}<br><b>Ranked by</b> {esc(summary['objective'])}"
                     + (f" ({esc(summary['objective_why'])})" if summary.get("objective_why") else "") + "</p>"
                     + (f"<ul>{flags}</ul>" if flags else "")
                     + f"<p class='note'>Scientific: {esc(', '.join(summary.get('scientific', {})))}; nuisance: "
                       f"{esc(', '.join(summary.get('nuisance', {})) or 'none')}; fixed: "
                       f"{esc(json.dumps(summary.get('fixed', {})))}</p>"
                     + table(points) + figure(study["objective"], f"{summary['study']}: objective per point")
                     + figure(study["best_curves"], f"{summary['study']}: curves of the best runs"))
    return "".join(parts) or "<p class='note'>No exploration study configured.</p>"


def _tuning(ctx: dict[str, Any]) -> str:
    best, inputs = ctx["tune"], ctx["inputs"]
    if not best:
        return "<p class='note'>Tuning is disabled (tune.enabled: false): the final trainings use the config.</p>"
    trials = pd.read_csv(inputs["tune_trials"]).to_dict("records") if inputs.get("tune_trials") else []
    return (f"<p>{esc(best['algorithm'])} search, {esc(best['trials'])} trials on {esc(best['n_train'])} training "
            f"images ({100 * best['data_fraction']:.0f}% of the fold) and {esc(best['n_val'])} validation images; "
            f"objective {esc(best['objective'])}"
            + (f" ({esc(best['objective_why'])})" if best.get("objective_why") else "") + ". Best: trial {esc(best['best_trial'])}, "
            f"{esc(best['objective'])} = {fmt(best['best_value'])}.</p>"
            + table([{"key": k, "value": v, "from": "exploration study"} for k, v in best["fixed_from_study"].items()]
                    + [{"key": k, "value": v, "from": "search"} for k, v in best["hyperparameters"].items()])
            + "<h3>Trials</h3>" + table(trials)
            + figure(inputs.get("tune_objective_plot"), "objective per trial")
            + figure(inputs.get("tune_hyperparameters_plot"), "hyperparameters against the objective")
            + figure(inputs.get("tune_top_curves"), "curves of the top trials"))


def _training(ctx: dict[str, Any]) -> str:
    rows, parts = [], []
    chosen = (ctx["model"] or {}).get("chosen", {}).get("seed")
    thresholds = (f"<p class='note'>Checks, in the order of docs/practices.md section 2: data (validation warnings "
                  f"and bias-audit findings); underfitting (the best training accuracy below the accuracy target); "
                  f"overfitting (validation loss {100 * OVERFIT_RISE:.0f}% above its minimum at the end, reached at "
                  f"least {OVERFIT_EPOCHS} epochs before, while the training loss fell, or training accuracy "
                  f"{OVERFIT_GAP:g} above validation accuracy); updates "
                  f"(NaN losses, weights changed by more than {EXPLODED_CHANGE:g} times their initial norm, or no "
                  f"layer changed by {FROZEN_CHANGE:g}); the best epoch at the last epoch (still improving) or at "
                  f"the first (the monitor disagrees with the objective, or the rate is too high); a model "
                  f"predicting one class for most test images. When the targets are not met, the first "
                  f"material finding in that order sets the next action (a data warning on under "
                  f"{100 * MATERIAL_SHARE:g}% of the images is minor).</p>")
    for run in ctx["finals"]:
        metrics, diagnosis = run["metrics"], run["diagnosis"]
        evaluation = ctx["per_seed_test"].get(run["seed"], {})
        rows.append({"seed": run["seed"], "fold": metrics.get("fold"), "status": metrics.get("status"),
                     "epochs run": metrics.get("epochs_run"), "best epoch": metrics.get("best_epoch"),
                     metrics.get("monitor", "monitor"): metrics.get("best_value"),
                     "test accuracy": evaluation.get("accuracy"), "seconds": metrics.get("seconds"),
                     "deployed": run["seed"] == chosen})
        findings = "".join(f"<li><b>{esc(f['kind'])}</b>: {esc(f['message'])}</li>" for f in diagnosis["findings"])
        body = (f"<ul>{findings or '<li>no finding</li>'}</ul><p class='action'><b>Next action</b> "
                f"({esc(diagnosis['reason'])}): {esc(diagnosis['next_action'])}</p>"
                + figure(run["curves"], f"seed {run['seed']}: training curves")
                + figure(run["weight_histograms"], f"seed {run['seed']}: weight histograms per layer over epochs"))
        title = f"Seed {run['seed']}" + (" (deployed)" if run["seed"] == chosen else "")
        opened = " open" if run["seed"] == chosen else ""
        parts.append(f"<details{opened}><summary><b>{esc(title)}</b>: {esc(diagnosis['reason'])}</summary>"
                     f"{body}</details>")
    applied = ctx["finals"][0]["metrics"].get("applied", {}) if ctx["finals"] else {}
    monitor = ctx["finals"][0]["metrics"].get("monitor") if ctx["finals"] else None
    return (f"<p>Each final model retrains the chosen configuration with its own seed (tuned values applied: "
            f"{esc(json.dumps(applied))}). Early stopping, the learning-rate reduction and the best checkpoint "
            f"watched {esc(monitor)}.</p>" + table(rows) + "<h3>Diagnosis of each run</h3>" + thresholds
            + "".join(parts))


def _test(ctx: dict[str, Any]) -> str:
    evaluation, inputs = ctx["evaluation"], ctx["inputs"]
    if not evaluation:
        return "<p class='note'>No test evaluation.</p>"
    aggregate = evaluation["aggregate"]
    targets = [{"target": f"{t['metric_name']} " + " and ".join(
        f"{op} {t[k]}" for k, op in (("min", ">="), ("max", "<=")) if t.get(k) is not None),
        "mean": t.get("mean"), "std": t.get("std"), "low": t.get("low"), "high": t.get("high"),
        "met": "met" if t["met"] else "NOT met", "met with confidence": "yes" if t["met_with_confidence"] else "no",
        "description": t.get("description", "")} for t in evaluation["targets"]]
    # Test-time augmentation (evaluation.tta): its own rows, after the plain ones, never in their place.
    shown = [(name, name) for name in GLOBAL_METRICS] + [(f"tta.{name}", f"{name} with test-time flips")
                                                          for name in GLOBAL_METRICS]
    global_rows = [{"metric": label, **{k: aggregate[key].get(k) for k in ("mean", "std", "low", "high")}}
                   for key, label in shown if key in aggregate]
    ensemble = ""
    if evaluation.get("ensemble"):
        section = evaluation["ensemble"]
        rows = [{"metric": name, "ensemble": row["ensemble"], "single models: mean": row["single_mean"],
                 "low": row["single_low"], "high": row["single_high"], "gain over the mean": row["gain"]}
                for name, row in section["metrics"].items()]
        ensemble = (f"<h3>Ensemble of the {len(section['members'])} final models (deployed)</h3><p class='note'>"
                    "Their probabilities averaged; one evaluation of the sealed test set, beside the single "
                    "models' mean and interval.</p>" + table(rows))
    per_class = []
    for name in evaluation["classes"]:
        row: dict[str, Any] = {"class": name}
        for metric in ("precision", "recall", "specificity", "f1", "roc_auc"):
            entry = aggregate.get(f"per_class.{name}.{metric}")
            row[metric] = (f"{fmt(entry['mean'], 3)} [{fmt(entry['low'], 3)}, {fmt(entry['high'], 3)}]"
                           if entry and entry.get("mean") is not None else "-")
        per_class.append(row)
    events = ""
    if evaluation.get("reevaluations"):
        events = ("<p class='bad'>Warning: the sealed test set was evaluated again after the decisions behind "
                  "these models changed:</p>" + table(evaluation["reevaluations"]))
    level = f"{100 * evaluation['confidence']:.0f}%"
    thresholds = ""
    if evaluation.get("thresholds"):
        rows = [{"class": t["class"], "target": f"sensitivity >= {t['min']}",
                 "thresholds (per seed)": ", ".join("-" if v is None else f"{v:.3f}" for v in t["thresholds"]),
                 "test sensitivity": f"{fmt(t['test_sensitivity']['plain'], 3)} -> "
                                     f"{fmt(t['test_sensitivity']['thresholded'], 3)}",
                 "test specificity": f"{fmt(t['test_specificity']['plain'], 3)} -> "
                                     f"{fmt(t['test_specificity']['thresholded'], 3)}"}
                for t in evaluation["thresholds"]]
        applied = evaluation["thresholds"][0]["applied"]
        thresholds = ("<h3>Operating thresholds</h3><p class='note'>Chosen on each model's validation images "
                      "to meet the sensitivity target (plain -> thresholded, mean over the models); "
                      + ("applied to the figures above." if applied else
                         "not applied (evaluation.apply_thresholds: false).") + "</p>" + table(rows))
    agreed = ""
    if evaluation.get("agreed_errors") and evaluation["agreed_errors"]["count"]:
        found = evaluation["agreed_errors"]
        rows = [{"image": m["path"], "label": m["label"], "answered": m["answered"],
                 "mean probability of the label": m["p_label"]} for m in found["images"]]
        agreed = (f"<h3>Images every model gets wrong</h3><p class='note'>{esc(found['count'])} of "
                  f"{esc(found['n_test'])} test images misclassified by all {esc(found['models'])} final models "
                  f"(each got {found['mean_errors']:.1f} wrong on average); {esc(found['confident'])} of them "
                  f"confidently, with the same answer. {esc(LABEL_CHECK)}</p>" + table(rows))
    return (f"<p>{esc(evaluation['n_test'])} test images, evaluated once per final model (seeds "
            f"{esc(', '.join(map(str, evaluation['seeds'])))}); mean, standard deviation and {level} Student-t "
            f"interval over the models.</p>" + events + "<h3>Targets</h3>" + table(targets)
            + "<h3>Metrics</h3>" + table(global_rows) + ensemble
            + "<h3>Per class (mean [interval])</h3>" + table(per_class)
            + thresholds + agreed
            + figure(inputs.get("metrics_plot"), "metrics over seeds")
            + figure(inputs.get("confusion_matrix"), "confusion matrix summed over the final models")
            + "<h3>Misclassified test images, most confident first (deployed model)</h3>"
            + figure(inputs.get("mistakes_plot"), "misclassified test images") + _saliency(ctx))


def _saliency(ctx: dict[str, Any]) -> str:
    result, inputs = ctx.get("saliency"), ctx["inputs"]
    if not result:
        return ""
    rows = [{"class": r["label"], "images": r["n"], "mean border share": r["mean_border_share"],
             "median": r["median_border_share"], "share of images above 0.5": r["share_above_half"]}
            for r in result["per_class"]]
    groups = "".join(
        f"<details><summary>by {esc(column)}</summary>" + table(
            [{"group": r[column], "images": r["n"], "mean border share": r["mean_border_share"]} for r in records])
        + "</details>" for column, records in result.get("per_group", {}).items())
    flags = "".join(f"<p class='bad'>{esc(f['message'])}. {esc(f.get('hint', ''))}</p>" for f in result["findings"])
    return (f"<h3>What the model looks at (Grad-CAM)</h3><p class='note'>Grad-CAM of the deployed model "
            f"({esc(result['model'])}) at layer {esc(result['layer'])}, for the class it predicted. The border share "
            f"is the share of the saliency in the outer {result['margin']:.0%} of the image (a uniform map: "
            f"{result['uniform_border_share']:.2f}), over {result['n_images']} test images drawn per class; a class "
            "well above it may be recognised by a ruler, a mark or a frame.</p>"
            + (flags or "<p>No class's saliency sits on the border.</p>") + table(rows) + groups
            + figure(inputs.get("saliency_gallery"), "saliency grid"))


def _audit(ctx: dict[str, Any]) -> str:
    data, groups, inputs = ctx["audit_data"], ctx["audit_groups"], ctx["inputs"]
    if not data and not groups:
        return "<p class='note'>No audit.</p>"
    findings = (data or {}).get("findings", []) + (groups or {}).get("findings", [])
    association = [{"column": c, "groups": e["association"]["levels"], "Cramér's V": e["association"]["cramers_v"],
                    "p-value": e["association"]["p_value"]} for c, e in (data or {}).get("columns", {}).items()]
    gaps = []
    for column, entry in (groups or {}).get("summary", {}).items():
        per_seed = entry.get("per_seed", {})
        lows = [g.get("difference_low") for g in per_seed.values() if g.get("difference_low") is not None]
        highs = [g.get("difference_high") for g in per_seed.values() if g.get("difference_high") is not None]
        gaps.append({"column": column, "mean gap": entry.get("mean_difference"),
                     "interval (mean of the models')": (f"[{fmt(sum(lows) / len(lows), 3)}, "
                                                        f"{fmt(sum(highs) / len(highs), 3)}]" if lows else "-"),
                     "worst group": entry.get("worst_group", "-"),
                     "too small to judge": ", ".join(entry.get("too_small", [])) or "-"})
    metric = (groups or {}).get("metric", "accuracy")
    return ("<h3>Findings</h3>" + table([{"severity": f["severity"], "column": f["column"], "message": f["message"]}
                                        for f in findings])
            + "<h3>Before training: group and label (training and validation images)</h3>" + table(association)
            + f"<h3>After training: {esc(metric)} gap between the best and the worst group (test set)</h3>"
            + table(gaps) + figure(inputs.get("audit_plot"), "per-group metrics with their intervals"))


def _carbon(ctx: dict[str, Any]) -> str:
    carbon = ctx["carbon"]
    if not carbon or carbon.get("note"):
        return f"<p class='note'>{esc((carbon or {}).get('note', 'No carbon report.'))}</p>"
    total = carbon["total"]
    rows = [{"stage": s["stage"], "jobs": s["jobs"], "attempts": s["attempts"], "job-minutes": s["seconds"] / 60,
             "Wh": s["kwh"] * 1000, "g CO2eq": s["kg_co2eq"] * 1000, "mL water": s["litres"] * 1000}
            for s in carbon["stages"]]
    rows.append({"stage": "total", "jobs": sum(s["jobs"] for s in carbon["stages"]), "attempts": total["attempts"],
                 "job-minutes": total["seconds"] / 60, "Wh": total["kwh"] * 1000, "g CO2eq": total["kg_co2eq"] * 1000,
                 "mL water": total["litres"] * 1000})
    measures = "".join(f"<li>{esc(k.upper())}: {esc('; '.join(m for m in v['methods'] if m != 'none') or 'not used')}"
                       f"</li>" for k, v in carbon["measures"].items())
    per_point = carbon.get("energy_per_point")
    point = (f"<p>Per percentage point of test {esc(per_point['metric'])} ({100 * per_point['value']:.1f}): "
             f"{per_point['kwh_per_point'] * 1000:.3g} Wh, {per_point['kg_co2eq_per_point'] * 1000:.3g} g CO2eq.</p>"
             if per_point else "")
    unfinished = (f"<p class='warn'>Attempts that did not finish (killed or failed; counted up to their last "
                  f"record): {esc(', '.join(carbon['killed_or_failed']))}</p>" if carbon["killed_or_failed"] else "")
    return (f"<p>Every job that trains, tunes or evaluates ran under codecarbon's offline tracker (its own process "
            f"and children). Carbon intensity: {esc('; '.join(carbon['intensity']))}; PUE "
            f"{esc(', '.join(map(str, carbon['pue'])))}; water {esc(carbon['water_litres_per_kwh'])} L/kWh "
            f"(carbon.water_litres_per_kwh, source in the config schema). Reruns and killed attempts are "
            f"included.</p><ul>{measures}</ul>" + point + unfinished + table(rows, digits=3)
            + figure(ctx["inputs"].get("carbon_plot"), "energy per stage"))


def _environment(ctx: dict[str, Any]) -> str:
    env = ctx["environment"]
    git = env.get("git", {})
    runtime = ctx["finals"][0]["metrics"].get("runtime", {}) if ctx["finals"] else {}
    dirty = git.get("dirty")
    commit = (f"<code>{esc(git.get('commit'))}</code>" + (" <span class='warn'>with uncommitted changes</span>"
                                                          if dirty else "")
              if git.get("commit") else esc(git.get("note", "unknown")))
    hardware = env.get("hardware", {})
    return (f"<p>Git commit of the workflow: {commit}. Report made {esc(ctx['generated'])}.</p>"
            + "<h3>Packages</h3>" + table([{"package": k, "version": v} for k, v in env.get("packages", {}).items()])
            + "<h3>Hardware</h3>" + table([{k: (", ".join(v) if isinstance(v, list) else v)
                                            for k, v in hardware.items()}])
            + "<h3>Determinism</h3>" + table([{"seeds": ", ".join(map(str, ctx["seeds"])),
                                              **{k: v for k, v in runtime.items() if k != "seed"}}])
            + "<p class='note'>Same config and seed on CPU give the same manifests, trials and weights "
              "(op determinism on, thread counts pinned).</p>")


RENDERERS = {"summary": _summary, "config": _config, "data": _data, "split": _split, "exploration": _exploration,
             "tuning": _tuning, "training": _training, "test": _test, "audit": _audit, "carbon": _carbon,
             "deployment": lambda ctx: export_section(ctx["export"], ctx["deployment_card"],
                                                 ctx["inputs"].get("deployment_card")),
             "drift": lambda ctx: drift_section(ctx["drifts"], as_list(ctx["inputs"].get("drift_plots")),
                                                ctx["config"]["monitor"]["alpha"]),
             "environment": _environment}


# -- assembly ------------------------------------------------------------------
def load_context(inputs: Mapping[str, Any], config: dict[str, Any], environment: dict[str, Any],
                 generated: str) -> dict[str, Any]:
    """Read every input file the report shows, and diagnose the final runs.

    Args:
        inputs: Paths by name (Snakemake's named inputs): single paths, or lists for
            per-study and per-seed files, in matching orders.
        config: The validated config.
        environment: Packages, hardware and git state (:mod:`imgclf.core.environment`).
        generated: When the report is made (ISO time).
    """
    evaluation = read_json(inputs.get("evaluation"))
    audit_data = read_json(inputs.get("audit_data"))
    validation = read_json(inputs.get("validation"))
    studies = [{"summary": read_json(s), "points": p, "objective": o, "best_curves": b}
               for s, p, o, b in zip(as_list(inputs.get("study_summaries")), as_list(inputs.get("study_points")),
                                     as_list(inputs.get("study_objective_plots")),
                                     as_list(inputs.get("study_best_curves")))]
    per_seed_test = {}
    for path in as_list(inputs.get("test_metrics")):
        record = read_json(path)
        per_seed_test[int(record["seed"])] = record["metrics"]
    shared = data_findings((validation or {}).get("findings", []), (audit_data or {}).get("findings", []),
                           ((validation or {}).get("summary") or {}).get("n_usable"))
    saliency = read_json(inputs.get("saliency"))
    shared += saliency_findings((saliency or {}).get("findings", []))
    shared += label_findings((evaluation or {}).get("agreed_errors"))
    targets_met = evaluation["all_targets_met"] if evaluation and evaluation["targets"] else None
    finals = []
    for metrics_path, history_path, curves, histograms, samples in zip(
            as_list(inputs.get("final_metrics")), as_list(inputs.get("final_histories")), as_list(inputs.get("final_curves")),
            as_list(inputs.get("final_weight_histograms")), as_list(inputs.get("final_weight_samples"))):
        metrics = read_json(metrics_path)
        history = pd.read_csv(history_path)
        changes = changes_from_weight_samples(samples)
        finals.append({"seed": int(metrics["seed"]), "metrics": metrics, "curves": curves,
                       "weight_histograms": histograms,
                       "diagnosis": diagnose_run(history, changes, config["targets"], shared, targets_met, metrics,
                                                 per_seed_test.get(int(metrics["seed"])), metrics.get("classes"))})
    model = read_json(inputs.get("model_card"))
    chosen = (model or {}).get("chosen", {}).get("seed")
    overall = next((f["diagnosis"] for f in finals if f["seed"] == chosen), finals[0]["diagnosis"] if finals else None)
    return {"inputs": dict(inputs), "config": config, "environment": environment, "generated": generated,
            "validation": validation, "split": read_json(inputs.get("split")), "studies": studies,
            "tune": read_json(inputs.get("tune_best")), "finals": finals, "per_seed_test": per_seed_test,
            "evaluation": evaluation, "model": model, "audit_data": audit_data, "saliency": saliency,
            "audit_groups": read_json(inputs.get("audit_groups")), "carbon": read_json(inputs.get("carbon")),
            "seeds": [f["seed"] for f in finals], "overall_diagnosis": overall,
            "drifts": [read_json(p) for p in as_list(inputs.get("drift_reports"))],
            "export": read_json(inputs.get("export")), "deployment_card": read_json(inputs.get("deployment_card"))}


def render_report(ctx: dict[str, Any]) -> str:
    """The HTML page of a loaded context: every section, in the order of the pipeline."""
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS)
    body = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{RENDERERS[key](ctx)}</section>'
                   for key, title in SECTIONS)
    config = ctx["config"]
    source = config["data"]["source"]
    where = config["data"]["root"] or config["data"]["manifest"] or "the embedded digits"
    git = ctx["environment"].get("git", {}).get("commit") or "no git commit"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>imgclf report</title><style>{STYLE}</style></head><body>"
            f"<header><h1>imgclf report</h1><p>Data: {esc(source)} ({esc(where)}); model "
            f"{esc(config['model']['architecture'])}; config {config_hash(config)[:12]}; commit {esc(git[:12])}</p>"
            f"<p>Made {esc(ctx['generated'])}</p></header><nav>{nav}</nav><main>{body}</main></body></html>\n")


def build_report(inputs: Mapping[str, Any], config: dict[str, Any], environment: dict[str, Any],
                 generated: str) -> str:
    """The report of a run as one self-contained HTML page (see :func:`load_context`)."""
    return render_report(load_context(inputs, config, environment, generated))
