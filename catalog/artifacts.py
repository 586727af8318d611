"""The artifacts table: files jobs derive from a model (Fishers, TALL-compressed bundles).

A row says "for model_id, a `kind` artifact lives at `path`, made with `params`". The
same (model_id, kind, path, params) is registered once, so re-running a job is a no-op;
when several artifacts of a kind exist for a model, the newest one answers lookups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from catalog.schema import ARTIFACTS
from catalog.store import Catalog

FISHER = "fisher"
TALL = "tall-compressed"


@dataclass(frozen=True)
class Artifact:
    model_id: str
    kind: str
    path: str
    params: dict[str, Any]
    run_id: str | None
    created_at: datetime | None


def _params_text(params: dict[str, Any]) -> str:
    # Sorted keys: the same params always give the same text, which is what dedup compares.
    return json.dumps(params, sort_keys=True, default=str)


def register_artifact(
    catalog: Catalog,
    model_id: str,
    kind: str,
    path: str | Path,
    params: dict[str, Any],
    run_id: str | None,
) -> bool:
    """Record an artifact; False (and nothing written) when it is already recorded."""
    path_text, params_text = str(Path(path).resolve()), _params_text(params)
    with catalog.reader() as con:
        known = con.execute(
            "SELECT count(*) FROM artifacts WHERE model_id = ? AND kind = ? AND path = ? "
            "AND params = ?",
            [model_id, kind, path_text, params_text],
        ).fetchone()[0]
    if known:
        return False
    row = {"model_id": model_id, "kind": kind, "path": path_text, "params": params_text,
           "run_id": run_id, "created_at": datetime.now(UTC)}
    catalog.commit({"artifacts": pa.Table.from_pylist([row], schema=ARTIFACTS)})
    return True


def find_artifacts(catalog: Catalog, model_id: str | None = None,
                   kind: str | None = None) -> list[Artifact]:
    """Artifacts, newest first, filtered by model and/or kind."""
    with catalog.reader() as con:
        rows = con.execute(
            "SELECT model_id, kind, path, params, run_id, created_at FROM artifacts "
            "WHERE (? IS NULL OR model_id = ?) AND (? IS NULL OR kind = ?) "
            "ORDER BY created_at DESC, path",
            [model_id, model_id, kind, kind],
        ).fetchall()
    return [Artifact(r[0], r[1], r[2], json.loads(r[3] or "{}"), r[4], r[5]) for r in rows]


def latest_artifact(catalog: Catalog, model_id: str, kind: str) -> Artifact | None:
    """The newest artifact of ``kind`` for ``model_id`` whose file still exists."""
    for artifact in find_artifacts(catalog, model_id, kind):
        if Path(artifact.path).exists():
            return artifact
    return None
