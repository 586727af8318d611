"""crawl_state: per (model, sha) what happened, so jobs resume instead of redoing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from catalog.encoded import EncodedTable
from catalog.runs import finish_run_in
from catalog.store import Catalog, known_revisions_in

# The same upsert for a whole batch in one statement (executemany runs one statement
# per row: ~10 ms each, most of the per-model cost of indexing small models). Every
# (model_id, sha) at most once per statement: DuckDB refuses to update a row twice.
UPSERT_MANY = """
INSERT INTO crawl_state (model_id, sha, status, attempts, error, updated_at)
SELECT m, s, st, n, e, now() FROM (SELECT unnest(?::VARCHAR[]) AS m,
    unnest(?::VARCHAR[]) AS s, unnest(?::VARCHAR[]) AS st, unnest(?::INTEGER[]) AS n,
    unnest(?::VARCHAR[]) AS e)
ON CONFLICT (model_id, sha) DO UPDATE SET
    status = excluded.status,
    attempts = crawl_state.attempts + excluded.attempts,
    error = excluded.error,
    updated_at = now()
"""


def record_states(
    catalog: Catalog,
    rows: list[tuple[str, str, str, str | None]],
    pending: list[tuple[str, str]] = (),
    succeeded_run: str | None = None,
    *,
    on: duckdb.DuckDBPyConnection | None = None,
) -> None:
    """Record (model_id, sha, status, error) rows; attempts count every record (a key
    given twice counts twice and keeps its last status), in one statement. `pending`:
    keys to mark as seen and not yet finished (see mark_pending), and `succeeded_run`,
    a run to finish as succeeded (a crawl's last batch), in the same transaction (one
    connection: opening one costs ~15 ms). `on`: the connection of the caller's
    `catalog.writer()` (see commit_then_record), else one of its own."""
    pending = _once(pending)
    if not rows and not pending and succeeded_run is None:
        return
    with catalog.writer() if on is None else contextlib.nullcontext(on) as con:
        con.execute("BEGIN")
        try:
            if pending:
                con.execute(PENDING_MANY, _pending_columns(pending))
            if rows:
                con.execute(UPSERT_MANY, _state_columns(rows))
            if succeeded_run is not None:
                finish_run_in(con, succeeded_run, "succeeded")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def commit_then_record(
    catalog: Catalog,
    tables: dict[str, pa.Table | EncodedTable] | None,
    rows: list[tuple[str, str, str, str | None]],
    pending: list[tuple[str, str]] = (),
    succeeded_run: str | None = None,
) -> None:
    """`catalog.commit(tables)` (unless None), then `record_states(...)`: in that order,
    as two steps (the batch is published before its states say so), on one writer
    connection held under the writer lock throughout."""
    with catalog.writer() as con:
        if tables is not None:
            catalog.commit(tables, on=con)
        record_states(catalog, rows, pending, succeeded_run, on=con)


def _state_columns(rows: list[tuple[str, str, str, str | None]]) -> list[list]:
    last: dict[tuple[str, str], tuple[str, str | None]] = {}
    counts: dict[tuple[str, str], int] = {}
    for model_id, sha, status, error in rows:
        last[(model_id, sha)] = (status, error)
        counts[(model_id, sha)] = counts.get((model_id, sha), 0) + 1
    keys = list(last)
    return [[k[0] for k in keys], [k[1] for k in keys], [last[k][0] for k in keys],
            [counts[k] for k in keys], [last[k][1] for k in keys]]


def states(catalog: Catalog, status: str | None = None) -> dict[tuple[str, str], dict]:
    with catalog.reader() as con:
        return _states_in(con, status)


def _states_in(con, status: str | None = None) -> dict[tuple[str, str], dict]:
    sql = "SELECT model_id, sha, status, attempts, error FROM crawl_state"
    params: list[object] = []
    if status:
        sql += " WHERE status = ?"
        params.append(status)
    rows = con.execute(sql, params).fetchall()
    return {(m, s): {"status": st, "attempts": a, "error": e} for m, s, st, a, e in rows}


PENDING_MANY = """
INSERT INTO crawl_state (model_id, sha, status, attempts, error, updated_at)
SELECT m, s, 'pending', 0, NULL, now() FROM (SELECT unnest(?::VARCHAR[]) AS m,
    unnest(?::VARCHAR[]) AS s)
ON CONFLICT (model_id, sha) DO NOTHING
"""


def mark_pending(catalog: Catalog, rows: list[tuple[str, str]]) -> None:
    """Note (model_id, sha) rows as seen and not yet finished; never downgrades a status
    already recorded, and does not count as an attempt."""
    record_states(catalog, [], rows)


def _once(keys) -> list[tuple[str, str]]:
    return list(dict.fromkeys(keys))  # each key once: one statement for the whole list


def _pending_columns(keys: list[tuple[str, str]]) -> list[list[str]]:
    return [[k[0] for k in keys], [k[1] for k in keys]]


def known_card_edges(catalog: Catalog) -> set[tuple[str, str, str]]:
    """(parent, child, relation) of every card-documented edge already committed."""
    with catalog.reader() as con:
        return _card_edges_in(con)


def _card_edges_in(con) -> set[tuple[str, str, str]]:
    rows = con.execute(
        "SELECT DISTINCT parent, child, relation FROM edges WHERE source = ?", ["card"]
    ).fetchall()
    return set(rows)


@dataclass(frozen=True)
class ResumeState:
    """What a crawl starts from: recorded states, committed revisions, card edges."""

    states: dict[tuple[str, str], dict]
    revisions: set[tuple[str, str]]
    card_edges: set[tuple[str, str, str]]


def resume_state(catalog: Catalog) -> ResumeState:
    """`states`, `Catalog.known_revisions` and `known_card_edges` on one connection."""
    with catalog.reader() as con:
        return ResumeState(_states_in(con), known_revisions_in(con), _card_edges_in(con))
