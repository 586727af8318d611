"""A catalog directory and the only code that opens DuckDB connections on it.

Layout of DIR:
    catalog.duckdb         state tables (runs, crawl_state), views, macros, migrations
    parts/<batch>/<table>.parquet   committed batches, immutable
    staging/<batch>/       batches being written; never read
    .writer.lock           serialises commits across processes
    .initialised           written last when the catalog was created

A batch becomes visible by one atomic directory rename, so a reader sees whole batches
only, and a crash mid-write leaves nothing but a staging folder to sweep. Batches are
written to staging only while the writer lock is held, so whoever holds the lock knows
every staging folder it finds is a dead writer's: each open sweeps them (when the lock
is free). Creation is idempotent and finished by a marker file, so a catalog whose
creation was killed at any point is completed by the next open.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.encoded import COMPRESSION, EncodedTable, conform, dictionary_columns, key_rows
from catalog.migrations_runner import apply_migrations, available_migrations
from catalog.schema import SCHEMA_VERSION, TABLES
from lineage.errors import CatalogError

DB_NAME = "catalog.duckdb"
INIT_MARKER = ".initialised"
SCHEMA_BATCH = f"{SCHEMA_VERSION:08d}-schema"  # zero-row tables of the current schema
LOCK_RETRY_SECONDS = 30.0


def default_catalog_dir() -> Path:
    return Path(os.environ.get("LINEAGE_CATALOG", "./lineage-catalog"))


def _sql_text(name: str) -> str:
    return resources.files("catalog").joinpath("sql", name).read_text()


def _split_sql(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


class Catalog:
    """A catalog directory. Cheap to construct; connections are opened per operation."""

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).resolve()
        if not (self.root / DB_NAME).exists() and not create:
            raise CatalogError(
                f"catalog {self.root}",
                "does not exist",
                "Run `lineage index --catalog DIR ...` first, or pass the right --catalog",
            )
        if not self._initialised():
            # New, written by an older version (a new Parquet schema batch and SQL
            # migrations to apply), or its creation was killed: finish it.
            self._initialise_unless_read_only()
        self._sweep_if_idle()

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    # -- setup -------------------------------------------------------------------------

    def _initialise(self) -> None:
        for sub in ("parts", "staging"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._sweep_staging_locked()  # a creation killed mid-publish left one
            if not (self.parts / SCHEMA_BATCH).exists():
                # Zero-row files give every view its columns before any data arrives.
                self._publish(
                    {name: schema.empty_table() for name, schema in TABLES.items()}, SCHEMA_BATCH
                )
            self._migrate_database()
            tmp = self.root / f"{INIT_MARKER}.tmp"
            tmp.write_text(f"{_schema_version()}\n")
            os.replace(tmp, self.root / INIT_MARKER)
            _fsync_dir(self.root)

    def _migrate_database(self) -> None:
        """Bring the DuckDB file up to date; called with the writer lock held.

        A new file is built beside its final name and renamed into place: DuckDB
        creates the file before it writes the header, so a kill between the two would
        leave a file that no later open can read."""
        self._set_aside_unfinished_database()
        if self.db_path.exists():
            with self._raw_connect(read_only=False) as con:
                self._set_up_database(con)
            return
        fresh = self.root / f"{DB_NAME}.creating"
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)  # a creation killed earlier
        con = duckdb.connect(str(fresh))
        try:
            self._set_up_database(con)
            con.execute("CHECKPOINT")  # everything in the file itself, no WAL beside it
        finally:
            con.close()
        os.replace(fresh, self.db_path)
        _fsync_dir(self.root)

    def _set_aside_unfinished_database(self) -> None:
        """A release before the rename above, killed while creating the file, left one
        DuckDB cannot read. With no creation marker it never held a run: keep it aside
        (never delete what might be evidence) and build a new one."""
        if not self.db_path.exists() or (self.root / INIT_MARKER).exists():
            return
        try:
            duckdb.connect(str(self.db_path), read_only=True).close()
        except duckdb.Error as err:
            if "not a valid duckdb database" not in str(err).lower():
                return  # locked or unreadable for another reason: the open below says so
            os.replace(self.db_path, self.root / f"{DB_NAME}.unfinished-{uuid.uuid4().hex[:8]}")

    def _set_up_database(self, con: duckdb.DuckDBPyConnection) -> None:
        apply_migrations(con)
        # One transaction: each statement on its own commits to the WAL (about 3 ms
        # each, ~50 ms for creating a catalog).
        con.execute("BEGIN")
        try:
            self._define_views(con, temp=False)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _initialised(self) -> bool:
        """Creation finished, with every migration this code knows applied."""
        try:
            return (self.root / INIT_MARKER).read_text().strip() == _schema_version()
        except OSError:
            return False

    def _initialise_unless_read_only(self) -> None:
        """An existing catalog on a read-only filesystem is read as it is: readers
        tolerate the columns an older schema lacks (union_by_name reads them as NULL)."""
        try:
            self._initialise()
        except OSError:
            if not self.db_path.exists():
                raise

    def _define_views(self, con: duckdb.DuckDBPyConnection, *, temp: bool) -> None:
        parts = str(self.parts).replace("'", "''")
        for name in ("views.sql", "macros.sql"):
            text = _sql_text(name).replace("{parts}", parts)
            for stmt in _split_sql(text.replace("{temp}", "TEMP" if temp else "")):
                con.execute(stmt)
        if not temp:
            con.execute(
                "INSERT OR REPLACE INTO catalog_meta VALUES ('root', ?), ('views', ?)",
                [str(self.root), _views_digest()],
            )

    def _stored_views_current(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether the views stored in the file are the ones this code would define
        here: made for this directory, from this code's views.sql and macros.sql. Then
        a reader uses them as they are (defining the temporary ones binds every view
        over the Parquet files: about 10 ms a connection)."""
        try:
            rows = dict(con.execute(
                "SELECT key, value FROM catalog_meta WHERE key IN ('root', 'views')"
            ).fetchall())
        except duckdb.Error:
            return False  # an older catalog, read as it is
        return rows.get("root") == str(self.root) and rows.get("views") == _views_digest()

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def _raw_connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the DuckDB file, retrying while another process holds its write lock."""
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                con = duckdb.connect(str(self.db_path), read_only=read_only)
                break
            except duckdb.IOException as err:
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise CatalogError(
                        f"catalog {self.root}",
                        f"cannot be opened: {err}",
                        "Another process holds it; retry when it finishes",
                    ) from None
                time.sleep(0.05)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection whose views point at this directory, wherever it is."""
        with self._raw_connect(read_only=True) as con:
            yield self._viewed(con)

    def _viewed(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """`con`, its views pointing at this directory (the stored ones when current)."""
        if not self._stored_views_current(con):
            self._define_views(con, temp=True)
        return con

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The read-write connection, held briefly, under the cross-process lock."""
        with self._lock(), self._raw_connect(read_only=False) as con:
            yield con

    @contextlib.contextmanager
    def _lock(self, *, wait: bool = True) -> Iterator[bool]:
        """The cross-process writer lock; yields False (not held) only when `wait` is
        False and another writer holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".writer.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- batches -----------------------------------------------------------------------

    def commit(
        self,
        tables: dict[str, pa.Table | EncodedTable],
        *,
        on: duckdb.DuckDBPyConnection | None = None,
    ) -> str | None:
        """Atomically publish one batch of rows for several tables; returns its id.

        Rows of models/tensors whose (model_id, revision) is already in the catalog are
        dropped, so re-indexing the same revision never duplicates anything. A table
        may come encoded already (catalog.encoded): its bytes are written as they are.
        `on`: the connection of the caller's `writer()`, which holds the writer lock:
        what is committed already is read on it (a commit followed by state updates on
        the same connection opens one connection, not two: ~15 ms each).
        """
        tables = {
            name: table if isinstance(table, EncodedTable) else conform(name, table)
            for name, table in tables.items()
        }
        with self._lock() if on is None else contextlib.nullcontext():
            tables = self._drop_known_revisions(tables, on)
            if not any(t.num_rows for t in tables.values()):
                return None
            batch = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
            self._publish(tables, batch)
            return batch

    def _publish(self, tables: dict[str, pa.Table | EncodedTable], batch: str) -> None:
        """Write `batch` to staging and rename it into parts; the caller holds the lock."""
        staging = self.root / "staging" / batch
        shutil.rmtree(staging, ignore_errors=True)  # a dead writer's copy of this name
        staging.mkdir(parents=True)
        try:
            for name, table in tables.items():
                if isinstance(table, EncodedTable):
                    if table.num_rows:
                        with open(staging / f"{name}.parquet", "wb") as fh:
                            fh.writelines(table.chunks())
                elif table.num_rows or batch == SCHEMA_BATCH:
                    pq.write_table(
                        table,
                        staging / f"{name}.parquet",
                        compression=COMPRESSION,
                        use_dictionary=dictionary_columns(table.schema),
                    )
            _fsync_dir(staging)
            os.rename(staging, self.parts / batch)
            _fsync_dir(self.parts)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _drop_known_revisions(
        self, tables: dict, con: duckdb.DuckDBPyConnection | None = None
    ) -> dict:
        """Keep each fact once, whatever the batch and the catalog already hold.

        models/tensors are keyed by (model_id, revision) (tensors also by name): rows
        of a revision already committed, or repeated in this batch, are dropped. edges
        are keyed by (parent, child, relation, source): the edges that came with a
        dropped model row go with it, repeats in the batch are dropped, and edges that
        come without a model row are dropped when already committed. Recovered edges
        are a per-run snapshot (read by run_id), so only repeats within a batch count.
        Called under the writer lock, so a concurrent writer's commit is seen; read on
        `con` when given (a writer's), else on a reader of its own."""
        with self._reading(con) as reader:
            known = known_revisions_in(reader)
        out = dict(tables)
        kept, dropped = set(), set()
        if "models" in tables:
            keys = _keys(tables["models"], "model_id", "revision")
            mask = _first_unseen(keys, known)
            for (model_id, _), keep in zip(keys, mask, strict=True):
                (kept if keep else dropped).add(model_id)
            out["models"] = _kept(tables["models"], mask)
        if "tensors" in tables:
            keys = _keys(tables["tensors"], "model_id", "revision", "name")
            known_tensors = {k for k in keys if k[:2] in known}
            mask = _first_unseen(keys, known_tensors)
            out["tensors"] = _kept(tables["tensors"], mask)
        if "edges" in tables and tables["edges"].num_rows:
            out["edges"] = self._new_edges(tables["edges"], kept, dropped - kept, con)
        return out

    def _new_edges(
        self,
        edges: pa.Table,
        kept: set[str],
        dropped: set[str],
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> pa.Table:
        keys = key_rows(edges, "parent", "child", "relation", "source")
        loose = {k[1] for k in keys if k[1] not in kept and k[3] != "recovered"}
        committed = self._edge_keys(sorted(loose), con) if loose else set()
        seen: set[tuple] = set()
        mask = []
        for key in keys:
            child = key[1]
            keep = (
                key not in seen
                and child not in dropped
                and not (child in loose and key in committed)
            )
            seen.add(key)
            mask.append(keep)
        return _kept(edges, mask)

    def _edge_keys(
        self, children: list[str], con: duckdb.DuckDBPyConnection | None = None
    ) -> set[tuple]:
        with self._reading(con) as reader:
            rows = reader.execute(
                "SELECT DISTINCT parent, child, relation, source FROM edges "
                "WHERE child IN (SELECT unnest(?::VARCHAR[]))",
                [children],
            ).fetchall()
        return set(rows)

    @contextlib.contextmanager
    def _reading(
        self, con: duckdb.DuckDBPyConnection | None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """`con` with this directory's views, or a reader of its own when None."""
        if con is not None:
            yield self._viewed(con)
            return
        with self.reader() as reader:
            yield reader

    def known_revisions(self) -> set[tuple[str, str]]:
        """Every (model_id, revision) already committed."""
        with self.reader() as con:
            return known_revisions_in(con)

    def sweep_staging(self) -> int:
        """Remove batches a crashed writer left half-written (waits for the writer
        lock, so a live writer's batch is never touched); returns how many."""
        with self._lock():
            return self._sweep_staging_locked()

    def _sweep_if_idle(self) -> int:
        """Sweep staging if no writer holds the lock right now; never waits."""
        staging = self.root / "staging"
        if not staging.is_dir() or not any(staging.iterdir()):
            return 0
        with self._lock(wait=False) as held:
            return self._sweep_staging_locked() if held else 0

    def _sweep_staging_locked(self) -> int:
        staging = self.root / "staging"
        leftovers = list(staging.iterdir()) if staging.exists() else []
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)


def _keys(table: pa.Table | EncodedTable, *columns: str) -> list[tuple]:
    """The key columns' rows (an encoded table keeps them as it encodes)."""
    return table.keys if isinstance(table, EncodedTable) else key_rows(table, *columns)


def _kept(table: pa.Table | EncodedTable, mask: list[bool]) -> pa.Table | EncodedTable:
    """The rows whose mask is True; the table itself when all are (filtering copies
    every column, float lists included: ~0.1 s for a batch of 100 small models)."""
    if all(mask):
        return table
    if isinstance(table, EncodedTable):
        table = table.to_table()  # some rows must go: decoded, then filtered as any
    return table.filter(pa.array(mask, pa.bool_()))


def _first_unseen(keys: list[tuple], known: set[tuple]) -> list[bool]:
    """True for each key not in `known` and not earlier in `keys`."""
    seen: set[tuple] = set()
    mask = []
    for key in keys:
        mask.append(key not in known and key not in seen)
        seen.add(key)
    return mask


def known_revisions_in(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Every (model_id, revision) committed, read on an open reader connection."""
    return set(con.execute("SELECT DISTINCT model_id, revision FROM models").fetchall())


@functools.cache
def _views_digest() -> str:
    """The views and macros this code defines (their SQL text), as a short digest."""
    text = "".join(_sql_text(name) for name in ("views.sql", "macros.sql"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schema_version() -> str:
    """The Parquet schema version and the newest SQL migration this code knows: the
    marker holds it, so a catalog from an older version is brought up to date."""
    newest = max((version for version, _, _ in available_migrations()), default=0)
    return f"{SCHEMA_VERSION}.{newest}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
