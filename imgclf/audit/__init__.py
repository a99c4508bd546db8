"""The audit stage: the bias audit of the data before training and of the final models after
(docs/audit.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "groups": ["audit_group_table", "audit_settings", "check_audit"],
    "jobs": ["audit_data", "audit_models"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
