"""The runs table: one row per job run, so every output row can name what made it."""

from __future__ import annotations

import json
import uuid

from catalog.store import Catalog


def start_run(catalog: Catalog, job: str, params: dict) -> str:
    run_id = f"{job}-{uuid.uuid4().hex[:12]}"
    with catalog.writer() as con:
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, now(), NULL, 'running')",
            [run_id, job, json.dumps(params, default=str, sort_keys=True)],
        )
    return run_id


def finish_run(catalog: Catalog, run_id: str, status: str = "succeeded") -> None:
    with catalog.writer() as con:
        con.execute(
            "UPDATE runs SET finished_at = now(), status = ? WHERE run_id = ?", [status, run_id]
        )


def last_successful_run(catalog: Catalog, job: str) -> dict | None:
    with catalog.reader() as con:
        row = con.execute(
            "SELECT run_id, started_at, params FROM runs WHERE job = ? "
            "AND status = 'succeeded' ORDER BY started_at DESC LIMIT 1",
            [job],
        ).fetchone()
    if row is None:
        return None
    return {"run_id": row[0], "started_at": row[1], "params": json.loads(row[2] or "{}")}


def start_named_run(catalog: Catalog, run_id: str, job: str, params: dict) -> str:
    """Start a run with a caller-chosen id (a schedule slot's submission id). A retry of
    the same id reuses its row, restarted; callers check `run_status` first so a
    succeeded id is never run again."""
    with catalog.writer() as con:
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, now(), NULL, 'running') "
            "ON CONFLICT (run_id) DO UPDATE SET started_at = now(), finished_at = NULL, "
            "status = 'running', params = excluded.params",
            [run_id, job, json.dumps(params, default=str, sort_keys=True)],
        )
    return run_id


def run_status(catalog: Catalog, run_id: str) -> str | None:
    """The status of run `run_id` (running | succeeded | failed), None if unknown."""
    with catalog.reader() as con:
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else row[0]
