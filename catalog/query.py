"""The read-only SQL entry point behind `lineage sql`.

Three layers keep it read-only: the DuckDB file is opened read_only; every statement
must parse as a SELECT (or EXPLAIN, DESCRIBE, SHOW); and file access is limited to the
catalog directory, with the configuration locked so a query cannot lift the limit.
Values are bound as parameters, never formatted into the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from catalog.store import Catalog
from lineage.errors import CatalogError, ReadOnlyQueryError

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
FIX = "lineage sql runs read-only queries over the catalog (SELECT, WITH, DESCRIBE, EXPLAIN)"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Split `sql` into statements and refuse any that is not a read."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise ReadOnlyQueryError(f"query {sql[:80]!r}", f"does not parse: {err}", FIX) from None
    if not statements:
        raise ReadOnlyQueryError("query ''", "is empty", FIX)
    for stmt in statements:
        if stmt.type not in ALLOWED:
            kind = str(stmt.type).rsplit(".", 1)[-1]
            raise ReadOnlyQueryError(
                f"statement {stmt.query.strip()[:80]!r}", f"is a {kind} statement", FIX
            )
    return [stmt.query for stmt in statements]


def _sandbox(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    root = str(catalog.root).replace("'", "''")
    con.execute(f"SET allowed_directories = ['{root}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def run_query(catalog: Catalog, sql: str, params: Sequence[object] = ()) -> QueryResult:
    """Run read-only `sql` (one or more statements; the last one's rows are returned)."""
    with catalog.reader() as con:
        _sandbox(con, catalog)
        statements = check_read_only(con, sql)
        cursor = None
        try:
            for i, stmt in enumerate(statements):
                last = i == len(statements) - 1
                cursor = con.execute(stmt, list(params) if last and params else None)
            columns = [d[0] for d in cursor.description or []]
            return QueryResult(columns, cursor.fetchall())
        except duckdb.PermissionException as err:
            raise ReadOnlyQueryError(
                f"query {sql[:80]!r}", f"reaches outside the catalog: {err}", FIX
            ) from None
        except duckdb.Error as err:
            raise CatalogError(f"query {sql[:80]!r}", f"failed: {err}", "Check the SQL") from None
