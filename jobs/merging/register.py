"""Put a merge job's output into the catalog: its fingerprint under the chosen model id,
and one merge-job edge per parent. Both steps skip what is already there, so a re-run
writes nothing new."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog import Catalog
from catalog.merges import record_merge_edges
from catalog.rows import ModelRef, fingerprint_tables
from jobs.merging.prepare import PreparedMerge
from lineage.fingerprint import fingerprint_model
from lineage.weights import open_model
from lineage.weights.discover import local_revision


@dataclass(frozen=True)
class Registered:
    model_id: str
    revision: str
    indexed: bool  # False: this revision was already in the catalog
    new_edges: tuple[str, ...]  # parents whose merge edge was written now


def index_output(catalog: Catalog, out: Path, model_id: str, run_id: str) -> tuple[str, bool]:
    """Fingerprint ``out`` as ``model_id`` (source local:<out>) unless this revision of it
    is already cataloged. Returns (revision, indexed now)."""
    revision = local_revision(out)
    if (model_id, revision) in catalog.known_revisions():
        return revision, False
    ref = ModelRef(model_id, revision, f"local:{out.resolve()}",
                   datetime.fromtimestamp(out.stat().st_mtime, UTC))
    with open_model(out) as model:
        fp = fingerprint_model(model)
    # Card edges come along: the card written by merge_models declares the parents.
    catalog.commit(fingerprint_tables([(ref, fp)], run_id))
    return revision, True


def edge_evidence(prepared: PreparedMerge) -> dict[str, dict[str, Any]]:
    """Per parent id: method, its weight (None for the base) and the recipe's parameters."""
    plans = prepared.recipe.plans()
    weights: dict[str, Any] = {}
    for plan in plans:  # one plan per slice; a weight that varies by layer is not a number
        for ref, w in zip(plan.inputs, plan.kwargs.get("weight", [None] * len(plan.inputs)),
                          strict=True):
            weights.setdefault(ref, w if isinstance(w, float) else None)
    bases = {plan.base for plan in plans}
    common = {"method": plans[0].method.name, "recipe_hash": prepared.recipe_hash,
              "parameters": json.loads(json.dumps(dict(prepared.recipe.parameters)))}
    return {
        prepared.parent_ids[ref]: {**common, "role": "base" if ref in bases else "input",
                                   "weight": weights.get(ref), "reference": ref}
        for ref in prepared.recipe.model_ids
    }


def register_merge(catalog: Catalog, out: Path, prepared: PreparedMerge,
                   run_id: str) -> Registered:
    revision, indexed = index_output(catalog, out, prepared.model_id, run_id)
    new = record_merge_edges(catalog, prepared.model_id, edge_evidence(prepared), run_id)
    return Registered(prepared.model_id, revision, indexed, tuple(new))
