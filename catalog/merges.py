"""What merge jobs write and read: merge-job edges, cached kinship values, common bases.

A merge job knows its output's parents for certain, so its edges carry confidence 1.0
and source ``merge-job``; evidence is JSON with the method, weights and recipe hash.
Edges are written once per (parent, child): re-running a job adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from catalog.schema import EDGES, KINSHIP
from catalog.store import Catalog

MERGE_JOB = "merge-job"


def merge_parents(catalog: Catalog, child: str) -> set[str]:
    """Parents already recorded for ``child`` by a merge job."""
    with catalog.reader() as con:
        rows = con.execute(
            "SELECT DISTINCT parent FROM edges WHERE child = ? AND source = ?",
            [child, MERGE_JOB],
        ).fetchall()
    return {r[0] for r in rows}


def record_merge_edges(
    catalog: Catalog,
    child: str,
    evidence: Mapping[str, Mapping[str, Any]],
    run_id: str,
) -> list[str]:
    """One merge edge parent -> child per ``evidence`` key (a parent id); returns the
    parents newly written (those already recorded are skipped)."""
    known = merge_parents(catalog, child)
    rows = [
        {"parent": parent, "child": child, "relation": "merge", "confidence": 1.0,
         "evidence": json.dumps(dict(ev), sort_keys=True, default=str),
         "source": MERGE_JOB, "run_id": run_id}
        for parent, ev in evidence.items() if parent not in known
    ]
    if rows:
        catalog.commit({"edges": pa.Table.from_pylist(rows, schema=EDGES)})
    return [r["parent"] for r in rows]


def lookup_kinship(catalog: Catalog, a: str, b: str, base: str,
                   metric: str = "cs") -> float | None:
    """A stored kinship value of the unordered pair (a, b) against ``base``; exact values
    win over sketch estimates, newer runs over older ones."""
    with catalog.reader() as con:
        row = con.execute(
            "SELECT value FROM kinship WHERE metric = ? AND base = ? "
            "AND ((a = ? AND b = ?) OR (a = ? AND b = ?)) "
            "ORDER BY (method = 'exact') DESC, run_id DESC LIMIT 1",
            [metric, base, a, b, b, a],
        ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def record_kinship(catalog: Catalog, rows: Iterable[tuple[str, str, str, float]],
                   run_id: str, metric: str = "cs", method: str = "exact") -> int:
    """Store computed (a, b, base, value) rows, so later selections read them back."""
    data = [{"a": a, "b": b, "base": base, "metric": metric, "value": value,
             "method": method, "run_id": run_id} for a, b, base, value in rows]
    if data:
        catalog.commit({"kinship": pa.Table.from_pylist(data, schema=KINSHIP)})
    return len(data)


def common_parents(catalog: Catalog, children: list[str]) -> list[tuple[str, int]]:
    """Parents of ``children`` along any edge (recovered, card, merge-job), with how many
    of the children each one parents, most shared first."""
    with catalog.reader() as con:
        rows = con.execute(
            "SELECT parent, count(DISTINCT child) AS n FROM edges "
            "WHERE list_contains(?, child) AND relation <> 'merge' "
            "GROUP BY parent ORDER BY n DESC, parent",
            [children],
        ).fetchall()
    return [(r[0], int(r[1])) for r in rows]
