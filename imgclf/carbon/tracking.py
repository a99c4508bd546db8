"""Tracking one job's energy and emissions with codecarbon, to a CSV of its own.

Every job that trains or predicts runs inside :func:`track_emissions`: codecarbon's offline
tracker, in process mode (the job's process and its children, so that parallel jobs are not
counted twice), with the configured country (or the world average) and PUE. Its records go to
one CSV per job (the rule's ``emissions`` param), written atomically every
``carbon.interval_seconds`` while the job runs and once more when it ends: a job that dies keeps
what it recorded, and a rerun adds a row of its own (one row per attempt, keyed by codecarbon's
run id).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.carbon.intensity import world_intensity
from imgclf.core.io import atomic_write_text, csv_text

#: Columns each job file holds besides codecarbon's own.
JOB_COLUMNS = ("stage", "job", "status", "cpu_measure", "gpu_measure", "ram_measure", "intensity_source",
               "started", "updated")


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
