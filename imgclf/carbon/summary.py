"""The carbon and water report (docs/practices.md section 6): pure sums over the job files.

:func:`carbon_summary` reads the rows every job's tracker wrote, sums energy (kWh), emissions
(kg CO2eq) and water (litres, from a litres-per-kWh factor) per job, per stage and in total, and
says which figures were measured (RAPL counters, NVML) and which were estimated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from imgclf.carbon.tracking import read_job_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def collect_job_files(paths: list[str | Path]) -> pd.DataFrame:
    """Every attempt of every job: the rows of the job files, concatenated."""
    tables = [read_job_file(p) for p in paths]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _measure_kind(values: pd.Series) -> str:
    kinds = sorted({str(v).split(" ")[0] for v in values.dropna() if str(v) != "none"})
    return " and ".join(kinds) if kinds else "none"


def carbon_summary(runs: pd.DataFrame, water_litres_per_kwh: float, metric: str | None = None,
                   metric_value: float | None = None, stage_order: Sequence[str] = ()) -> dict[str, Any]:
    """Energy, emissions and water per job, per stage and in total.

    Args:
        runs: Every attempt of every job (:func:`collect_job_files`).
        water_litres_per_kwh: Water consumed per kWh (``carbon.water_litres_per_kwh``).
        metric: The metric energy is related to (the test metric of ``carbon.metric``).
        metric_value: Its mean over the final models, in [0, 1].
        stage_order: The pipeline's stages in order, for the tables (others follow by name).

    Returns:
        ``total``, ``stages`` (in pipeline order), ``jobs`` (one row each: attempts,
        unfinished attempts, seconds, kWh, kg CO2eq, litres), ``measures`` (per
        component: measured, estimated or none, and the methods), ``intensity``,
        ``energy_per_point`` (kWh per percentage point of the metric).
    """
    empty = {"kwh": 0.0, "kg_co2eq": 0.0, "litres": 0.0, "seconds": 0.0, "attempts": 0}
    if runs.empty:
        return {"total": dict(empty), "stages": [], "jobs": [], "measures": {}, "intensity": [],
                "water_litres_per_kwh": water_litres_per_kwh, "energy_per_point": None,
                "note": "no emissions recorded (carbon.enabled false, or no job has run)"}
    runs = runs.copy()
    for column in ("energy_consumed", "emissions", "duration", "cpu_energy", "gpu_energy", "ram_energy"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce").fillna(0.0)
    runs["litres"] = runs["energy_consumed"] * water_litres_per_kwh
    unfinished = runs["status"].astype(str) != "finished"

    def totals(part: pd.DataFrame) -> dict[str, Any]:
        return {"kwh": float(part["energy_consumed"].sum()), "kg_co2eq": float(part["emissions"].sum()),
                "litres": float(part["litres"].sum()), "seconds": float(part["duration"].sum()),
                "attempts": int(len(part)), "unfinished_attempts": int((part["status"] != "finished").sum()),
                "cpu_kwh": float(part["cpu_energy"].sum()), "gpu_kwh": float(part["gpu_energy"].sum()),
                "ram_kwh": float(part["ram_energy"].sum())}

    order = {name: i for i, name in enumerate(stage_order)}
    stages = [{"stage": stage, "jobs": int(part["job"].nunique()), **totals(part)}
              for stage, part in sorted(runs.groupby("stage"), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]
    jobs = [{"stage": stage, "job": job, **totals(part)}
            for (stage, job), part in sorted(runs.groupby(["stage", "job"]),
                                             key=lambda kv: (order.get(kv[0][0], len(order)), kv[0]))]
    measures = {}
    for component in ("cpu", "gpu", "ram"):
        column = f"{component}_measure"
        values = runs[column] if column in runs else pd.Series(dtype=str)
        measures[component] = {"kind": _measure_kind(values),
                               "methods": sorted({str(v) for v in values.dropna()})}
    total = totals(runs)
    result: dict[str, Any] = {
        "total": total, "stages": stages, "jobs": jobs, "measures": measures,
        "intensity": sorted({str(v) for v in runs["intensity_source"].dropna()}),
        "countries": sorted({str(v) for v in runs["country_name"].dropna()}),
        "pue": sorted({float(v) for v in pd.to_numeric(runs["pue"], errors="coerce").dropna()}),
        "water_litres_per_kwh": water_litres_per_kwh,
        "killed_or_failed": [f"{r['stage']}/{r['job']}" for _, r in runs[unfinished].iterrows()],
        "energy_per_point": None,
    }
    if metric and metric_value:
        points = 100.0 * metric_value
        result["energy_per_point"] = {"metric": metric, "value": metric_value,
                                      "kwh_per_point": total["kwh"] / points,
                                      "kg_co2eq_per_point": total["kg_co2eq"] / points}
    return result


def _figure(value: float, unit: str) -> str:
    """A small quantity with a readable unit (Wh below 1 kWh, g below 1 kg, mL below 1 L)."""
    smaller = {"kWh": ("Wh", 1e3), "kg CO2eq": ("g CO2eq", 1e3), "L": ("mL", 1e3)}
    if unit in smaller and abs(value) < 1:
        name, factor = smaller[unit]
        return f"{value * factor:.3g} {name}"
    return f"{value:.3g} {unit}"


def carbon_markdown(summary: dict[str, Any]) -> str:
    """The carbon and water report as Markdown."""
    total = summary["total"]
    lines = ["# Energy, carbon and water", ""]
    if summary.get("note"):
        return "\n".join(lines + [summary["note"], ""])
    lines += [f"Total over {total['attempts']} job attempts: **{_figure(total['kwh'], 'kWh')}**, "
              f"**{_figure(total['kg_co2eq'], 'kg CO2eq')}**, **{_figure(total['litres'], 'L')} of water** "
              f"({summary['water_litres_per_kwh']} L/kWh), {total['seconds'] / 60:.1f} job-minutes.", ""]
    per_point = summary.get("energy_per_point")
    if per_point:
        lines += [f"Per percentage point of test {per_point['metric']} ({100 * per_point['value']:.1f}): "
                  f"{_figure(per_point['kwh_per_point'], 'kWh')}, "
                  f"{_figure(per_point['kg_co2eq_per_point'], 'kg CO2eq')}.",
                  ""]
    lines += ["How each figure was obtained:", ""]
    for component, entry in summary["measures"].items():
        used = [m for m in entry["methods"] if m != "none"]
        lines.append(f"- {component.upper()}: {'; '.join(used) if used else 'not used'}")
    lines += [f"- carbon intensity: {'; '.join(summary['intensity'])}", f"- PUE: {', '.join(map(str, summary['pue']))}",
              ""]
    if summary["killed_or_failed"]:
        lines += [f"Attempts that did not finish (killed, failed or still running; their energy up to the "
                  f"last record is counted): {', '.join(summary['killed_or_failed'])}", ""]
    lines += ["| stage | jobs | attempts | job-minutes | energy | CO2eq | water |", "|---|---|---|---|---|---|---|"]
    for row in summary["stages"]:
        lines.append(f"| {row['stage']} | {row['jobs']} | {row['attempts']} | {row['seconds'] / 60:.1f} | "
                     f"{_figure(row['kwh'], 'kWh')} | {_figure(row['kg_co2eq'], 'kg CO2eq')} | "
                     f"{_figure(row['litres'], 'L')} |")
    lines.append(f"| total | {sum(r['jobs'] for r in summary['stages'])} | {total['attempts']} | "
                 f"{total['seconds'] / 60:.1f} | {_figure(total['kwh'], 'kWh')} | "
                 f"{_figure(total['kg_co2eq'], 'kg CO2eq')} | {_figure(total['litres'], 'L')} |")
    return "\n".join(lines) + "\n"


def plot_carbon(summary: dict[str, Any]) -> "Figure":
    """Energy per stage, split into CPU, GPU and RAM, with the emissions on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    stages = summary["stages"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(stages))
    bottom = np.zeros(len(stages))
    for component, color in (("cpu", "C0"), ("gpu", "C2"), ("ram", "C1")):
        values = np.array([s[f"{component}_kwh"] for s in stages]) * 1000
        if values.any():
            ax.bar(x, values, bottom=bottom, color=color, label=component.upper())
            bottom += values
    ax.set_xticks(x, [f"{s['stage']}\n({s['jobs']} jobs)" for s in stages], fontsize=8)
    ax.set_ylabel("energy (Wh)")
    if stages:
        if bottom.any():
            ax.legend(fontsize=8, loc="upper left")
        twin = ax.twinx()
        twin.plot(x, [s["kg_co2eq"] * 1000 for s in stages], "ko--", label="g CO2eq")
        twin.set_ylabel("emissions (g CO2eq)")
        twin.set_ylim(bottom=0)
    ax.set_title("Energy per stage (bars) and emissions (line)", fontsize=9)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig
