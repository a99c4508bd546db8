"""The report stage: one self-contained HTML report and the reproducibility record (docs/report.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "jobs": ["report_galleries", "report_html", "reproducibility_record"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
