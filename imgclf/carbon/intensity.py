"""Grid carbon intensity, from codecarbon's offline data, and the load-time check of ``carbon:``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from imgclf.core.errors import ConfigError


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
