"""SQL behind Model Graph recovery: load fingerprints and card edges, write edges.

Every value is bound as a parameter. Sketches, rank sketches and coordinate samples
travel as Arrow list columns and are turned into numpy without a Python loop per
element. Recovery reads the catalog only, never weights: a catalog written before
schema 2 has no rank sketches or samples (NULL, or no column at all where the catalog
directory could not be upgraded); those models recover without that evidence and
`missing_evidence` says which they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.schema import EDGES
from catalog.store import Catalog
from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import FLOAT_DTYPES, CardEdge, ModelInput, TensorStat

RECOVER_JOB = "recover"

# Creation time only where the Hub recorded it: a local folder's time says when it was
# copied or touched, not which model came first, and must not decide anything.
MODELS_SQL = """
SELECT model_id, revision, source, arch_signature, kind, model_type, dtype,
       card_base_models, card_relation, adapter_base,
       CASE WHEN source LIKE 'hub:%' THEN epoch(created_at) END AS created_at
FROM current_models ORDER BY model_id
"""

# Sketches of weight tensors of 2+ dims only (matrices, conv kernels): the rest take part
# through their content hash.
# {evidence} selects the schema-2 columns, or NULLs where the view lacks them.
TENSORS_SQL = """
SELECT t.model_id, t.name, t.shape, t.dtype, t.content_hash, t.mean, t.std, t.kurtosis,
       CASE WHEN len(t.shape) >= 2 THEN t.sketch END AS sketch, {evidence}
FROM tensors t JOIN current_models m USING (model_id, revision)
ORDER BY t.model_id, t.name
"""
EVIDENCE_COLUMNS = {  # column -> its SQL type, for the NULL stand-in
    "rank_sketch": "FLOAT[]", "rank_width": "INTEGER", "sample": "FLOAT[]",
    "sample_size": "INTEGER",
}

CARD_EDGES_SQL = """
SELECT DISTINCT e.parent, e.child, e.relation
FROM edges e JOIN current_models m ON m.model_id = e.child AND m.run_id = e.run_id
WHERE e.source = 'card'
"""

LATEST_RUN_SQL = """
SELECT run_id FROM runs WHERE job = ? AND status = 'succeeded'
ORDER BY started_at DESC LIMIT 1
"""

RUN_EDGES_SQL = """
SELECT parent, child, relation, confidence, evidence FROM edges
WHERE source = 'recovered' AND run_id = ? ORDER BY child, parent
"""


def load_inputs(catalog: Catalog) -> tuple[list[ModelInput], list[CardEdge]]:
    """Every current model with its tensor fingerprints, and the card-declared edges."""
    with catalog.reader() as con:
        models = _arrow(con, MODELS_SQL).to_pylist()
        tensors = _arrow(con, _tensors_sql(con))
        cards = con.execute(CARD_EDGES_SQL).fetchall()
    stats = _tensor_stats(tensors)
    inputs = [
        ModelInput(
            model_id=m["model_id"],
            arch_signature=m["arch_signature"] or "",
            kind=m["kind"] or "transformers",
            model_type=m["model_type"],
            dtype=m["dtype"],
            card_base_models=tuple(m["card_base_models"] or ()),
            card_relation=m["card_relation"],
            adapter_base=m["adapter_base"],
            created_at=m["created_at"],
            tensors=stats.get(m["model_id"], {}),
        )
        for m in models
    ]
    return inputs, [CardEdge(p, c, r) for p, c, r in cards]


def _tensors_sql(con) -> str:  # noqa: ANN001 - a DuckDB connection
    have = {row[0] for row in con.execute("DESCRIBE tensors").fetchall()}
    parts = [f"t.{c}" if c in have else f"NULL::{kind} AS {c}"
             for c, kind in EVIDENCE_COLUMNS.items()]
    return TENSORS_SQL.format(evidence=", ".join(parts))


def _arrow(con, sql: str) -> pa.Table:  # noqa: ANN001 - a DuckDB connection
    """A parameterless query's rows as an Arrow table (DuckDB 2 renamed .arrow())."""
    relation = con.sql(sql)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def _tensor_stats(table: pa.Table) -> dict[str, dict[str, TensorStat]]:
    sketches = _float_lists(table.column("sketch"))
    ranks = _float_lists(table.column("rank_sketch"))
    samples = _float_lists(table.column("sample"))
    cols = {name: table.column(name).to_pylist() for name in
            ("model_id", "name", "shape", "dtype", "content_hash", "mean", "std", "kurtosis",
             "rank_width", "sample_size")}
    out: dict[str, dict[str, TensorStat]] = {}
    empty = np.zeros(0, np.float32)
    for k in range(table.num_rows):
        shape = tuple(cols["shape"][k])
        out.setdefault(cols["model_id"][k], {})[cols["name"][k]] = TensorStat(
            shape=shape,
            dtype=cols["dtype"][k],
            content_hash=cols["content_hash"][k],
            mean=_num(cols["mean"][k]),
            std=_num(cols["std"][k]),
            kurtosis=_num(cols["kurtosis"][k]),
            sketch=empty if sketches[k] is None else sketches[k],
            rank_sketch=_rank_matrix(ranks[k], shape, cols["rank_width"][k]),
            sample=samples[k],
            sample_size=cols["sample_size"][k],
        )
    return out


def _float_lists(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    """A list<float> column as numpy views of one flat float32 buffer (None for NULL)."""
    col = column.combine_chunks()
    if len(col) == 0:
        return []
    if col.null_count == len(col):
        return [None] * len(col)
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32)
    offsets = col.offsets.to_numpy()
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    return [flat[offsets[k] : offsets[k + 1]] if valid[k] else None for k in range(len(col))]


def _rank_matrix(values: np.ndarray | None, shape: tuple, width: int | None
                 ) -> np.ndarray | None:
    """The stored row-major rank sketch as [min(rows, k), min(cols, k)]; None when it is
    missing or does not fit its shape (a damaged row is evidence lost, not an error)."""
    if values is None or width is None or len(shape) != 2:
        return None
    rows, cols = min(shape[0], width), min(shape[1], width)
    return values.reshape(rows, cols) if values.size == rows * cols else None


def missing_evidence(models: Iterable[ModelInput]) -> list[str]:
    """Models with 2-D float matrices but no rank sketch or sample (indexed before
    schema 2): recovery cannot see their LoRA ranks or sparse merges."""
    return [m.model_id for m in models
            if any(len(t.shape) == 2 and min(t.shape) > 1 and t.dtype in FLOAT_DTYPES
                   and (t.rank_sketch is None or t.sample is None)
                   for t in m.tensors.values())]


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def edges_table(edges: Iterable[RecoveredEdge], run_id: str) -> pa.Table:
    rows = [
        {
            "parent": e.parent,
            "child": e.child,
            "relation": e.relation,
            "confidence": float(e.confidence),
            "evidence": json.dumps(e.evidence, sort_keys=True, default=_jsonable),
            "source": "recovered",
            "run_id": run_id,
        }
        for e in edges
    ]
    return pa.Table.from_pylist(rows, schema=EDGES)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_edges(catalog: Catalog, edges: Iterable[RecoveredEdge], run_id: str) -> int:
    table = edges_table(edges, run_id)
    catalog.commit({"edges": table})
    return table.num_rows


def latest_recover_run(catalog: Catalog) -> str | None:
    with catalog.reader() as con:
        row = con.execute(LATEST_RUN_SQL, [RECOVER_JOB]).fetchone()
    return row[0] if row else None


def recovered_edges(catalog: Catalog, run_id: str) -> list[RecoveredEdge]:
    with catalog.reader() as con:
        rows = con.execute(RUN_EDGES_SQL, [run_id]).fetchall()
    return [RecoveredEdge(p, c, r, float(conf or 0.0), json.loads(ev or "{}"))
            for p, c, r, conf, ev in rows]


def model_cards(catalog: Catalog) -> dict[str, dict]:
    """model_id -> what its card and config claim (for drawing claims beside weights)."""
    sql = ("SELECT model_id, kind, dtype, card_base_models, card_relation, adapter_base, "
           "license FROM current_models")
    with catalog.reader() as con:
        rows = _arrow(con, sql).to_pylist()
    return {r["model_id"]: r for r in rows}
