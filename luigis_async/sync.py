"""Deprecated: renamed ``luigis_async.reconcile`` ("sync" read as "synchronous").

This shim re-exports the same names for one release and warns on import; it will be
removed in the next one. Import from ``luigis_async.reconcile`` (or ``luigis_async``).
"""

import warnings

from .reconcile import (
    FieldChange,
    PlannedUpdate,
    SyncApplier,
    SyncPlan,
    SyncReport,
    apply_sync,
    natural_key,
    plan_sync,
)

__all__ = [
    "FieldChange",
    "PlannedUpdate",
    "SyncApplier",
    "SyncPlan",
    "SyncReport",
    "apply_sync",
    "natural_key",
    "plan_sync",
]

warnings.warn(
    "luigis_async.sync is deprecated and will be removed in the next release: "
    "import from luigis_async.reconcile instead",
    DeprecationWarning,
    stacklevel=2,
)
