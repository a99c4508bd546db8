"""Report sections after the test evaluation: the exported model and the drift monitoring."""

from __future__ import annotations

from typing import Any

from imgclf.export import FORMATS
from imgclf.report.html_parts import esc, figure, fmt, table


def _signal_row(name: str, signal: dict[str, Any], test: str) -> dict[str, Any]:
    flag = signal.get("drift")
    return {"signal": name, "test": test, "p-value": signal.get("p_value"),
            "verdict": "not measured" if flag is None else ("DRIFT" if flag else "no drift")}


def drift_section(drifts: list[dict[str, Any]], plots: list[str], alpha: float) -> str:
    """One block per monitored batch: its verdicts, the recommendation and the figure."""
    if not drifts:
        return ("<p class='note'>No batch monitored. After deployment, compare new images with the training "
                "data: <code>make monitor BATCH=path/to/new/images</code> (or monitor.batches in the config); "
                "the drift report of each batch appears here.</p>")
    blocks = [f"<p>Each batch against the deployed model's reference (its training images; its validation images "
              f"for the model's outputs), one verdict per signal at significance level {fmt(alpha)}.</p>"]
    for report, plot in zip(drifts, plots):
        s = report["signals"]
        rec = report["recommendation"]
        rows = [_signal_row("images", s["images"], "KS per statistic, chi-square of modes (Bonferroni)"),
                _signal_row("embeddings", s["embeddings"], "maximum mean discrepancy, permutation test"),
                _signal_row("predictions", s["predictions"], "class mix (chi-square), confidences (KS)"),
                _signal_row("performance", s["performance"], "accuracy vs test accuracy (Fisher, one-sided)")]
        perf = s["performance"]
        performance = (f"<p>Accuracy on its {perf['n']} labelled images: {fmt(perf['accuracy'], 3)} "
                       f"[{fmt(perf['low'], 3)}, {fmt(perf['high'], 3)}], against {fmt(perf['baseline']['accuracy'], 3)} "
                       f"[{fmt(perf['baseline']['low'], 3)}, {fmt(perf['baseline']['high'], 3)}] on the test set.</p>"
                       if perf.get("n") else "")
        findings = "".join(f"<li class='warn'>{esc(f['message'])}</li>" for f in report.get("findings", []))
        dropped = (f"<p class='warn'>{len(report['dropped'])} file(s) could not be used and were left out.</p>"
                   if report.get("dropped") else "")
        outliers = report["outliers"]
        blocks.append(
            f"<h3>Batch {esc(report['batch'])}: {report['n_images']} images ({report['n_labelled']} labelled)</h3>"
            f"<p class='action'><b>{esc(rec['action'])}</b>: {esc(rec['reason'])}</p>"
            + table(rows) + performance
            + f"<p>Outliers (a statistic {fmt(outliers['threshold'])} robust standard deviations from the reference "
              f"median or more): {outliers['n']} ({100 * outliers['share']:.0f}%).</p>"
            + (f"<ul>{findings}</ul>" if findings else "") + dropped
            + figure(plot, f"batch {report['batch']}: distributions against the reference"))
    return "".join(blocks)


def export_section(export: dict[str, Any] | None, card: dict[str, Any] | None, card_path: str | None = None) -> str:
    """The TFLite files against the Keras model, and the model card's intended use and limitations.

    Args:
        export: The export's measurements (None when off). card: The model card.
        card_path: The model card's JSON file, as the rule names it (its Markdown lies beside it).
    """
    parts = []
    if card:
        details = card["model_details"]
        where = f"<code>{esc(card_path)}</code> (and its <code>.md</code>)" if card_path else "the model card"
        parts.append(f"<p>Model card: {where}: "
                     f"{esc(details['name'])}, seed {esc(details['deployed_seed'])}, sha256 "
                     f"<code>{esc(details['sha256'][:16])}</code>.</p><p><b>Intended use.</b> "
                     f"{esc(card['intended_use']['description'])} <b>Out of scope:</b> "
                     f"{esc(card['intended_use']['out_of_scope'])}.</p>")
    if export:
        keras = export["keras"]
        rows = [{"format": "Keras (model.keras)", "kB": keras["bytes"] / 1024, "test accuracy": keras["accuracy"],
                 "change": None, "same class as Keras": None,
                 "latency ms (median)": keras["latency_ms"]["median"], "p90": keras["latency_ms"]["p90"]}]
        for name, entry in sorted(export["formats"].items(), key=lambda item: FORMATS.index(item[0])):
            worst = min((g["delta"] for g in entry["per_group"] if g.get("judged")), default=None)
            rows.append({"format": f"TFLite {name}", "kB": entry["bytes"] / 1024, "test accuracy": entry["accuracy"],
                         "change": entry["delta"], "same class as Keras": entry["agreement_with_keras"],
                         "worst group change": worst, "latency ms (median)": entry["latency_ms"]["median"],
                         "p90": entry["latency_ms"]["p90"]})
        findings = "".join(f"<li class='warn'>{esc(f['message'])}</li>" for f in export.get("findings", []))
        parts.append(f"<h3>TFLite export</h3><p>Single-image latency on this CPU "
                     f"({esc(export['latency']['threads'])} thread(s), {esc(export['latency']['runs'])} runs); int8 "
                     f"calibrated on {esc(export['representative']['n'])} training images; accuracy on the "
                     f"{esc(export['n_test'])} test images, and per audited group.</p>" + table(rows)
                     + (f"<ul>{findings}</ul>" if findings else "<p class='ok'>No format loses more than "
                        f"{fmt(export['thresholds']['max_accuracy_drop'])} accuracy, nor any group more than "
                        f"{fmt(export['thresholds']['max_group_drop'])}.</p>"))
    elif card:
        parts.append("<p class='note'>No TFLite export (export.enabled is false).</p>")
    if card:
        parts.append("<h3>Limitations</h3><ul>" + "".join(f"<li>{esc(item['text'])}</li>"
                                                           for item in card["limitations"]) + "</ul>")
    return "".join(parts) or "<p class='note'>No model card.</p>"
