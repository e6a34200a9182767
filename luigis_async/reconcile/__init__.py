"""Declarative sync: plan the fewest writes that make the service match a desired set.

Only customizations carrying the caller's *managed tag* are ever read, changed or deleted;
everything sync writes carries that tag, so hand-made customizations are safe. Desired and
existing customizations are matched by their natural key, compared semantically (the same
instant in any timezone, key order, tag order and pin order are all irrelevant), and the
plan lists creates, updates (with per-field diffs), deletes (only when pruning) and
unchanged ones. Applying runs creates, then updates, then deletes, through the batch
machinery. A create whose answer was lost shows up on the next plan as an existing managed
customization, so running sync twice converges.

``reconcile.plan`` compares and writes nothing; ``reconcile.apply`` writes.
"""

from ..models import natural_key
from .apply import SyncApplier, SyncReport, apply_sync
from .plan import FieldChange, PlannedUpdate, SyncPlan, plan_sync

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
