"""The runs table: one row per job run, so every output row can name what made it.

Each run records the host, pid and process start time of its process. A run still
`running` whose process is gone from this host (killed, crashed, machine rebooted) is
marked `killed` when the next job starts, so `runs` never claims a dead job is alive.
"""

from __future__ import annotations

import json
import os
import socket
import uuid

import duckdb

from catalog.store import Catalog

INSERT_RUN = (
    "INSERT INTO runs (run_id, job, params, started_at, finished_at, status, host, pid, "
    "pid_started) VALUES (?, ?, ?, now(), NULL, 'running', ?, ?, ?)"
)


def start_run(catalog: Catalog, job: str, params: dict) -> str:
    run_id = f"{job}-{uuid.uuid4().hex[:12]}"
    with catalog.writer() as con:
        mark_dead_runs(con)
        con.execute(INSERT_RUN, [run_id, job, _params(params), *_owner()])
    return run_id


def finish_run(catalog: Catalog, run_id: str, status: str = "succeeded") -> None:
    with catalog.writer() as con:
        finish_run_in(con, run_id, status)


def finish_run_in(con: duckdb.DuckDBPyConnection, run_id: str, status: str) -> None:
    """finish_run on an open writer connection (inside the caller's transaction)."""
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
        mark_dead_runs(con)
        con.execute(
            INSERT_RUN + " ON CONFLICT (run_id) DO UPDATE SET started_at = now(), "
            "finished_at = NULL, status = 'running', params = excluded.params, "
            "host = excluded.host, pid = excluded.pid, pid_started = excluded.pid_started",
            [run_id, job, _params(params), *_owner()],
        )
    return run_id


def run_status(catalog: Catalog, run_id: str) -> str | None:
    """The status of run `run_id` (running | succeeded | failed | killed), None if unknown."""
    with catalog.reader() as con:
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else row[0]


def mark_dead_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Mark `killed` every running run of this host whose process is gone (or whose pid
    now belongs to a younger process); returns their ids. Runs of other hosts, and runs
    recorded before owners were (NULL host), are left alone: we cannot see them."""
    host = socket.gethostname()
    rows = con.execute(
        "SELECT run_id, pid, pid_started FROM runs WHERE status = 'running' AND host = ?",
        [host],
    ).fetchall()
    dead = [run_id for run_id, pid, started in rows if not _alive(pid, started)]
    if dead:
        con.executemany(
            "UPDATE runs SET status = 'killed', finished_at = now() WHERE run_id = ?",
            [[run_id] for run_id in dead],
        )
    return dead


def _params(params: dict) -> str:
    return json.dumps(params, default=str, sort_keys=True)


def _owner() -> tuple[str, int, int | None]:
    return socket.gethostname(), os.getpid(), _process_start(os.getpid())


def _alive(pid: int | None, started: int | None) -> bool:
    if pid is None:
        return True  # unknown owner: never declared dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    state, now_started = _proc_stat(pid)
    if state == "Z":
        return False  # killed, waiting to be reaped by its parent
    return started is None or now_started is None or now_started == started


def _process_start(pid: int) -> int | None:
    return _proc_stat(pid)[1]


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state, start time in clock ticks since boot) of a process (Linux), to tell a
    zombie or a reused pid from the original; (None, None) where /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None, None
    # Field 2 (comm) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) <= 19:
        return None, None
    return fields[0].decode("ascii", "replace"), int(fields[19])
