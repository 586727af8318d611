"""The read-only SQL entry point behind `lineage sql`.

Three layers keep it read-only: the DuckDB file is opened read_only; every statement
must parse as a SELECT (or EXPLAIN, DESCRIBE, SHOW); and file access is limited to the
catalog directory, with the configuration locked so a query cannot lift the limit.
Values are bound as parameters, never formatted into the text.

Two limits keep one query from taking the machine: DuckDB's `memory_limit` (set before
the configuration is locked; past it DuckDB spills or fails the query) and a statement
timeout, a watchdog thread that interrupts the connection. Errors come back as one line
(DuckDB's `LINE 1: ...` and caret block folded into a position).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from catalog.store import Catalog
from lineage.errors import CatalogError, ReadOnlyQueryError

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
FIX = "lineage sql runs read-only queries over the catalog (SELECT, WITH, DESCRIBE, EXPLAIN)"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_LIMIT = "2GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
_LINE = re.compile(r"^LINE (\d+): ?(.*)$")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


@dataclass(frozen=True)
class QueryLimits:
    timeout_s: float | None = DEFAULT_TIMEOUT_S  # None or 0: no timeout
    memory_limit: str = DEFAULT_MEMORY_LIMIT  # DuckDB's syntax: 512MB, 2GB, 1.5GiB

    def __post_init__(self) -> None:
        if not _MEMORY.match(self.memory_limit):
            raise CatalogError(f"memory limit {self.memory_limit!r}", "is not a size",
                               "Give a number and a unit, e.g. 512MB or 2GB")
        if self.timeout_s is not None and self.timeout_s < 0:
            raise CatalogError(f"timeout {self.timeout_s!r}", "is negative",
                               "Give seconds > 0, or 0 for no timeout")


def fold_error(err: Exception) -> str:
    """DuckDB's message on one line: the caret under `LINE n: text` becomes a column."""
    lines = str(err).splitlines()
    text, where = [], ""
    for i, line in enumerate(lines):
        found = _LINE.match(line)
        if found:
            caret = lines[i + 1] if i + 1 < len(lines) else ""
            column = len(caret) - len(caret.lstrip()) - (len(line) - len(found.group(2))) + 1
            where = f" (line {found.group(1)}, column {max(column, 1)})"
        elif line.strip() and set(line.strip()) != {"^"}:
            text.append(line.strip())
    return "; ".join(text) + where


def _dedupe_show_tables(statement: str, rows: list[tuple]) -> list[tuple]:
    """SHOW TABLES lists each view twice (the file's and the reader's temporary copy
    pointing at this directory); once is what the user asked."""
    if " ".join(statement.upper().rstrip("; \n").split()) != "SHOW TABLES":
        return rows
    return list(dict.fromkeys(rows))


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Split `sql` into statements and refuse any that is not a read."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise ReadOnlyQueryError(f"query {sql[:80]!r}", f"does not parse: {fold_error(err)}",
                                 FIX) from None
    if not statements:
        raise ReadOnlyQueryError("query ''", "is empty", FIX)
    for stmt in statements:
        if stmt.type not in ALLOWED:
            kind = str(stmt.type).rsplit(".", 1)[-1]
            raise ReadOnlyQueryError(
                f"statement {stmt.query.strip()[:80]!r}", f"is a {kind} statement", FIX
            )
    return [stmt.query for stmt in statements]


def _sandbox(con: duckdb.DuckDBPyConnection, catalog: Catalog, limits: QueryLimits) -> None:
    root = str(catalog.root).replace("'", "''")
    con.execute(f"SET memory_limit = '{limits.memory_limit.strip()}'")  # checked by _MEMORY
    con.execute(f"SET allowed_directories = ['{root}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def run_query(catalog: Catalog, sql: str, params: Sequence[object] = (),
              limits: QueryLimits | None = None) -> QueryResult:
    """Run read-only `sql` (one or more statements; the last one's rows are returned)
    within `limits` (default: 60 s, 2 GB)."""
    limits = limits or QueryLimits()
    with catalog.reader() as con:
        _sandbox(con, catalog, limits)
        statements = check_read_only(con, sql)
        watchdog = _Watchdog(con, limits.timeout_s)
        try:
            with watchdog:
                for i, stmt in enumerate(statements):
                    last = i == len(statements) - 1
                    cursor = con.execute(stmt, list(params) if last and params else None)
                columns = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            return QueryResult(columns, _dedupe_show_tables(statements[-1], rows))
        except duckdb.PermissionException as err:
            raise ReadOnlyQueryError(
                f"query {sql[:80]!r}", f"reaches outside the catalog: {fold_error(err)}", FIX
            ) from None
        except duckdb.InterruptException:
            if not watchdog.fired:
                raise KeyboardInterrupt from None
            raise CatalogError(f"query {sql[:80]!r}",
                               f"ran past the {limits.timeout_s:g} s timeout",
                               "Narrow it (WHERE, LIMIT), or raise --timeout") from None
        except duckdb.OutOfMemoryException as err:
            raise CatalogError(f"query {sql[:80]!r}",
                               f"needs more than the {limits.memory_limit} memory limit: "
                               f"{str(err).splitlines()[0]}",
                               "Narrow it (WHERE, LIMIT), or raise --memory-limit") from None
        except duckdb.Error as err:
            raise CatalogError(f"query {sql[:80]!r}", f"failed: {fold_error(err)}",
                               "Check the SQL") from None


class _Watchdog:
    """Interrupts `con` when the statements take longer than `seconds`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float | None) -> None:
        self._con, self._seconds = con, seconds
        self._timer: threading.Timer | None = None
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        self._con.interrupt()

    def __enter__(self) -> _Watchdog:
        if self._seconds:
            self._timer = threading.Timer(self._seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
