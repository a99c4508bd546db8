"""Energy, carbon and water of the pipeline's jobs (PRACTICES.md section 6).

Every job that trains or predicts runs inside :func:`track_emissions`:
codecarbon's offline tracker, in process mode (the job's process and its
children, so that parallel jobs are not counted twice), with the configured
country (or the world average) and PUE. Its records go to one CSV per job,
written atomically every ``carbon.interval_seconds`` while the job runs and
once more when it ends: a job that dies keeps what it recorded, and a rerun
adds a row of its own (one row per attempt, keyed by codecarbon's run id).

The report side (:func:`carbon_summary`) is pure: it reads those CSVs, sums
energy (kWh), emissions (kg CO2eq) and water (litres, from a litres-per-kWh
factor) per job, per stage and in total, and says which figures were measured
(RAPL counters, NVML) and which were estimated.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.errors import ConfigError
from imgclf.io import atomic_write_text, csv_text

#: Stages in pipeline order, for tables and plots.
STAGES = ("probe_batch_size", "explore", "tune", "final", "evaluate")

#: Columns each job file holds besides codecarbon's own.
JOB_COLUMNS = ("stage", "job", "status", "cpu_measure", "gpu_measure", "ram_measure", "intensity_source",
               "started", "updated")


def _codecarbon_data() -> Path:
    """codecarbon's data folder, found without importing codecarbon (load-time checks stay fast)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("codecarbon is not installed", "install the pinned environment: make venv")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra"


def country_intensities() -> dict[str, dict[str, Any]]:
    """codecarbon's countries: ISO code -> ``name``, ``intensity`` (g CO2eq/kWh), ``year``, ``twh``."""
    table = json.loads((_codecarbon_data() / "global_energy_mix.json").read_text(encoding="utf-8"))
    return {code: {"name": row["country_name"], "intensity": float(row["carbon_intensity"]),
                   "year": row.get("year"), "twh": float(row.get("total_TWh") or 0.0)}
            for code, row in table.items()}


def world_intensity() -> float:
    """The world's average grid carbon intensity (g CO2eq/kWh): codecarbon's countries,
    weighted by the electricity each produces (about 480 with codecarbon 3.3.2's data)."""
    countries = country_intensities().values()
    total = sum(c["twh"] for c in countries)
    return sum(c["intensity"] * c["twh"] for c in countries) / total


def regions_of(country: str) -> list[str] | None:
    """The regions codecarbon knows for a country (USA states, Canadian provinces), else None."""
    files = {"USA": "usa_emissions.json", "CAN": "canada_energy_mix.json"}
    if country not in files:
        return None
    path = _codecarbon_data() / "2023" / files[country]
    if not path.is_file():
        return None
    return sorted(k for k in json.loads(path.read_text(encoding="utf-8")) if not k.startswith("_"))


def check_carbon(config: dict[str, Any]) -> None:
    """Load-time checks of ``carbon:``: a country and region codecarbon knows.

    Raises:
        ConfigError: Naming the key and the closest valid values.
    """
    import difflib

    carbon = config["carbon"]
    if not carbon["enabled"]:
        return
    country, region = carbon["country_iso_code"], carbon["region"]
    if country is not None:
        countries = country_intensities()
        if country not in countries:
            by_name = {c["name"].lower(): code for code, c in countries.items()}
            close = difflib.get_close_matches(country.upper(), list(countries), n=3) + [
                by_name[n] for n in difflib.get_close_matches(country.lower(), list(by_name), n=2)]
            hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
            raise ConfigError(f"carbon.country_iso_code is {country!r}, which is not a country codecarbon "
                              f"knows{hint}",
                              "use a 3-letter ISO 3166 code such as FRA, DEU, USA, GBR, IND or CHN "
                              "(or null for the world average)")
    if region is not None:
        regions = regions_of(country) if country else None
        if regions is None:
            raise ConfigError(f"carbon.region is {region!r}, but codecarbon has regions only for USA and CAN "
                              f"(carbon.country_iso_code is {country!r})",
                              "remove carbon.region, or set carbon.country_iso_code to USA or CAN")
        if region.lower() not in regions:
            close = difflib.get_close_matches(region.lower(), regions, n=3)
            raise ConfigError(f"carbon.region is {region!r}, which is not a region of {country} codecarbon knows"
                              + (f"; did you mean {', '.join(close)}?" if close else ""),
                              f"use one of: {', '.join(regions)}")


def describe_measures(hardware: list[str]) -> dict[str, str]:
    """Whether codecarbon measures or estimates each component, from its hardware descriptions.

    Args:
        hardware: codecarbon's descriptions, e.g. ``["RAM()", "CPU(Cpu Load)", "GPU(...)"]``.

    Returns:
        ``cpu``, ``gpu`` and ``ram``: ``measured (...)``, ``estimated (...)`` or ``none``.
    """
    cpu = next((h for h in hardware if h.startswith("CPU")), "")
    if any(word in cpu for word in ("RAPL", "Power Gadget", "PowerGadget", "powermetrics", "Energy Meter")):
        cpu_measure = f"measured ({cpu[4:-1]})"
    elif cpu:
        cpu_measure = f"estimated ({cpu[4:-1] or 'constant'}: the CPU's TDP times its load)"
    else:
        cpu_measure = "none"
    gpu_measure = "measured (NVML)" if any(h.startswith("GPU") for h in hardware) else "none"
    ram_measure = "estimated (codecarbon's RAM power model)" if any(h.startswith("RAM") for h in hardware) else "none"
    return {"cpu": cpu_measure, "gpu": gpu_measure, "ram": ram_measure}


class JobEmissionsFile:
    """A codecarbon output handler: one row per attempt of a job, rewritten atomically.

    codecarbon's own CSV output rewrites its file in place: a job killed while it
    writes would lose the rows of earlier attempts. This one writes through a
    temporary file and a rename, and adds the stage, the job, the attempt's status
    (running, finished, failed) and how each figure was obtained.
    """

    def __init__(self, path: str | Path, stage: str, job: str, intensity_source: str,
                 country: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.fields = {"stage": stage, "job": job, "status": "running", "intensity_source": intensity_source,
                       "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.country = country or {}
        self._lock = threading.Lock()

    def set_measures(self, measures: dict[str, str]) -> None:
        self.fields.update(cpu_measure=measures["cpu"], gpu_measure=measures["gpu"], ram_measure=measures["ram"])

    def _write(self, data: Any) -> None:
        row = {**dataclasses.asdict(data), **self.country, **self.fields,
               "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._lock:
            previous = read_job_file(self.path)
            if not previous.empty:
                previous = previous[previous["run_id"].astype(str) != str(row["run_id"])]
            table = pd.concat([previous, pd.DataFrame([row])], ignore_index=True) if not previous.empty \
                else pd.DataFrame([row])
            atomic_write_text(self.path, csv_text(table))

    # codecarbon's BaseOutput interface: ``out`` at flush/stop, ``live_out`` at each measurement.
    def out(self, total: Any, delta: Any) -> None:
        self._write(total)

    def live_out(self, total: Any, delta: Any) -> None:
        self._write(total)

    def task_out(self, data: Any, experiment_name: str) -> None:
        pass

    def exit(self) -> None:
        pass


def read_job_file(path: str | Path) -> pd.DataFrame:
    """One job's emissions rows (empty when the file is absent or unreadable)."""
    try:
        return pd.read_csv(path, dtype={"run_id": str, "region": str, "gpu_model": str})
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return pd.DataFrame()


@contextmanager
def track_emissions(path: str | Path, stage: str, job: str, settings: dict[str, Any],
                    log: logging.Logger | None = None) -> Iterator[None]:
    """Run the body under codecarbon's offline tracker, recording to ``path``.

    Args:
        path: The job's emissions CSV (not a Snakemake output: it outlives a failed
            attempt, and every attempt adds its row).
        stage: The pipeline stage (explore, tune, final...).
        job: The job's name within its stage.
        settings: The ``carbon`` config section.
        log: Where to say what is tracked.
    """
    if not settings["enabled"]:
        yield
        return
    # codecarbon logs at INFO before its own log_level applies; its warnings about
    # concurrent trackers are expected here (parallel jobs each track their process).
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)

    country, region = settings["country_iso_code"], settings["region"]
    options: dict[str, Any] = {}
    if country is None:
        intensity = world_intensity()
        options.update(country_iso_code="USA", force_carbon_intensity_g_co2e_kwh=intensity)
        source = f"world average, {intensity:.0f} g CO2eq/kWh (carbon.country_iso_code not set)"
        overrides = {"country_name": "World (average)", "country_iso_code": "WORLD", "region": ""}
    else:
        options.update(country_iso_code=country, **({"region": region.lower()} if region else {}))
        source = f"{country}{'/' + region if region else ''} grid (codecarbon offline data)"
        overrides = {}
    handler = JobEmissionsFile(path, stage, job, source, overrides)
    tracker = OfflineEmissionsTracker(
        project_name="imgclf", experiment_name=f"{stage}/{job}", tracking_mode="process",
        pue=settings["pue"], measure_power_secs=settings["interval_seconds"], api_call_interval=1,
        output_methods=[], output_handlers=[handler], log_level="error", allow_multiple_runs=True, **options)
    tracker.start()
    handler.set_measures(describe_measures(tracker._conf.get("hardware", [])))  # noqa: SLF001
    tracker.flush()  # a first row at once: even a job killed in its first seconds leaves a record
    if log:
        log.info("carbon: tracking %s/%s (%s; CPU %s) to %s", stage, job, source, handler.fields["cpu_measure"],
                 path)
    try:
        yield
    except BaseException:
        handler.fields["status"] = "failed"
        tracker.stop()
        raise
    handler.fields["status"] = "finished"
    tracker.stop()
    if log:
        data = tracker.final_emissions_data
        log.info("carbon: %.6f kWh, %.6f kg CO2eq in %.0f s", data.energy_consumed, data.emissions, data.duration)


def collect_job_files(paths: list[str | Path]) -> pd.DataFrame:
    """Every attempt of every job: the rows of the job files, concatenated."""
    tables = [read_job_file(p) for p in paths]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _measure_kind(values: pd.Series) -> str:
    kinds = sorted({str(v).split(" ")[0] for v in values.dropna() if str(v) != "none"})
    return " and ".join(kinds) if kinds else "none"


def carbon_summary(runs: pd.DataFrame, water_litres_per_kwh: float, metric: str | None = None,
                   metric_value: float | None = None) -> dict[str, Any]:
    """Energy, emissions and water per job, per stage and in total.

    Args:
        runs: Every attempt of every job (:func:`collect_job_files`).
        water_litres_per_kwh: Water consumed per kWh (``carbon.water_litres_per_kwh``).
        metric: The metric energy is related to (the test metric of ``carbon.metric``).
        metric_value: Its mean over the final models, in [0, 1].

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

    order = {name: i for i, name in enumerate(STAGES)}
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


def plot_carbon(summary: dict[str, Any], path: str | Path) -> None:
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
        ax.legend(fontsize=8, loc="upper left")
        twin = ax.twinx()
        twin.plot(x, [s["kg_co2eq"] * 1000 for s in stages], "ko--", label="g CO2eq")
        twin.set_ylabel("emissions (g CO2eq)")
        twin.set_ylim(bottom=0)
    ax.set_title("Energy per stage (bars) and emissions (line)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
