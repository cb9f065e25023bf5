"""CKA's self term of a stored intermediate, ‖XᵀX‖² of its centred values, kept in its record.

Linear CKA between layers X and Y is ‖YᵀX‖² / (‖XᵀX‖·‖YᵀY‖). For a wide
layer the self term is the dear part (n·d² multiplications: for 2,000 rows
of a 1,024-unit layer, more than running the network that far), while the
cross term against a narrow layer costs n·dx·dy. The self term depends on
the stored values alone, so it is computed once and kept as one number in
the intermediate's document, tagged with the manifest it was computed from:
a re-materialized intermediate (new manifest) never uses a stale one, and
nothing is written to the object store, so there is no blob to verify or
collect. It is computed at an intermediate's first whole-layer similarity
query, not at capture: there it cost about 30% of a CNN's capture time, for
a query most captures never get. Another intermediate with the same
manifest (the same values: a frozen layer in each fine-tuned checkpoint)
reuses it (`find`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlkeep.intermediates import records
from mlkeep.intermediates.entities import Intermediate
from mlkeep.metadata import Database

KEY = "cka_self_term"  # the document field: {"manifest": id, "value": ‖XᵀX‖²}


def cached(inter: Intermediate) -> float | None:
    """The kept self term of the intermediate's stored values, or None (none kept, or for other values)."""
    entry = inter.document.get(KEY)
    if isinstance(entry, dict) and inter.manifest and entry.get("manifest") == inter.manifest:
        value = entry.get("value")
        if isinstance(value, float) and np.isfinite(value) and value >= 0:
            return value
    return None


def find(db: Database, inter: Intermediate) -> float | None:
    """`cached`, else the self term another intermediate of the same layer and dataset kept for the same
    stored values (the same manifest: content addressed, so a frozen layer captured again in each
    fine-tuned version, or by another capture, names the same one), kept in this record too."""
    own = cached(inter)
    if own is not None or not inter.manifest:
        return own
    for other in records.list_(db, layer=inter.layer, dataset_id=inter.dataset_id):
        value = cached(other) if other.manifest == inter.manifest and other.id != inter.id else None
        if value is not None:
            keep(db, inter, value)
            return value
    return None


def keep(db: Database, inter: Intermediate, value: float) -> None:
    """Record the self term of the intermediate's stored values (from a query that computed it anyway)."""
    if not inter.manifest:
        return
    fresh = records.get(db, inter.id)  # the query updated its costs meanwhile: keep those
    if fresh.manifest != inter.manifest or cached(fresh) is not None:
        return  # re-materialized meanwhile (the value belongs to the old values), or kept already
    doc = dict(fresh.document, **{KEY: {"manifest": inter.manifest, "value": float(value)}})
    records.set_costs(db, replace(fresh, document=doc), records.costs_of(fresh))
