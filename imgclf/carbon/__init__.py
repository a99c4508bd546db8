"""The carbon stage: energy, carbon and water of every job (docs/carbon.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "intensity": ["check_carbon"],
    "jobs": ["carbon_report"],
    "tracking": ["track_emissions"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
