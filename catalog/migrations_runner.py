"""Apply numbered `.sql` migrations once each, recording what was applied."""

from __future__ import annotations

from importlib import resources

import duckdb

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL
)"""


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every catalog/migrations/NNNN_name.sql, in order."""
    found = []
    for entry in resources.files("catalog").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.name, entry.read_text()))
    return sorted(found)


def apply_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction."""
    con.execute(MIGRATIONS_TABLE)
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in available_migrations():
        if version in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
