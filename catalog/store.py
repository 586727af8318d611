"""A catalog directory and the only code that opens DuckDB connections on it.

Layout of DIR:
    catalog.duckdb         state tables (runs, crawl_state), views, macros, migrations
    parts/<batch>/<table>.parquet   committed batches, immutable
    staging/<batch>/       batches being written; never read
    .writer.lock           serialises commits across processes

A batch becomes visible by one atomic directory rename, so a reader sees whole batches
only, and a crash mid-write leaves nothing but a staging folder to sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
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

from catalog.migrations_runner import apply_migrations
from catalog.schema import SCHEMA_VERSION, TABLES
from lineage.errors import CatalogError

DB_NAME = "catalog.duckdb"
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
        if not (self.root / DB_NAME).exists():
            if not create:
                raise CatalogError(
                    f"catalog {self.root}",
                    "does not exist",
                    "Run `lineage index --catalog DIR ...` first, or pass the right --catalog",
                )
            self._initialise()
        else:
            self._upgrade()

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
            if not (self.parts / SCHEMA_BATCH).exists():
                # Zero-row files give every view its columns before any data arrives.
                self._publish(
                    {name: schema.empty_table() for name, schema in TABLES.items()}, SCHEMA_BATCH
                )
            with self._raw_connect(read_only=False) as con:
                apply_migrations(con)
                self._define_views(con, temp=False)

    def _upgrade(self) -> None:
        """Bring a catalog written by an older version to the current schema: publish
        the zero-row batch of the current Parquet schema (new columns then read as NULL
        in older batches, via union_by_name) and apply pending SQL migrations. A stat
        when nothing is pending; skipped where the directory is read-only (readers
        tolerate the missing columns)."""
        if (self.parts / SCHEMA_BATCH).exists():
            return
        try:
            with self._lock():
                if not (self.parts / SCHEMA_BATCH).exists():
                    self._publish(
                        {name: schema.empty_table() for name, schema in TABLES.items()},
                        SCHEMA_BATCH,
                    )
                with self._raw_connect(read_only=False) as con:
                    apply_migrations(con)
        except OSError:
            return

    def _define_views(self, con: duckdb.DuckDBPyConnection, *, temp: bool) -> None:
        parts = str(self.parts).replace("'", "''")
        for name in ("views.sql", "macros.sql"):
            text = _sql_text(name).replace("{parts}", parts)
            for stmt in _split_sql(text.replace("{temp}", "TEMP" if temp else "")):
                con.execute(stmt)
        if not temp:
            con.execute("INSERT OR REPLACE INTO catalog_meta VALUES ('root', ?)", [str(self.root)])

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
            self._define_views(con, temp=True)
            yield con

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The read-write connection, held briefly, under the cross-process lock."""
        with self._lock(), self._raw_connect(read_only=False) as con:
            yield con

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".writer.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- batches -----------------------------------------------------------------------

    def commit(self, tables: dict[str, pa.Table]) -> str | None:
        """Atomically publish one batch of rows for several tables; returns its id.

        Rows of models/tensors whose (model_id, revision) is already in the catalog are
        dropped, so re-indexing the same revision never duplicates anything.
        """
        tables = {name: self._conform(name, table) for name, table in tables.items()}
        with self._lock():
            tables = self._drop_known_revisions(tables)
            if not any(t.num_rows for t in tables.values()):
                return None
            batch = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
            self._publish(tables, batch)
            return batch

    def _conform(self, name: str, table: pa.Table) -> pa.Table:
        if name not in TABLES:
            raise CatalogError(
                f"table {name!r}", "is not a catalog table", f"Tables: {', '.join(TABLES)}"
            )
        return table.select(TABLES[name].names).cast(TABLES[name])

    def _publish(self, tables: dict[str, pa.Table], batch: str) -> None:
        staging = self.root / "staging" / batch
        staging.mkdir(parents=True)
        try:
            for name, table in tables.items():
                if table.num_rows or batch == SCHEMA_BATCH:
                    pq.write_table(table, staging / f"{name}.parquet", compression="zstd")
            _fsync_dir(staging)
            os.rename(staging, self.parts / batch)
            _fsync_dir(self.parts)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _drop_known_revisions(self, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        keyed = [n for n in ("models", "tensors") if n in tables and tables[n].num_rows]
        if not keyed:
            return tables
        known = self.known_revisions()
        if not known:
            return tables
        out = dict(tables)
        for name in keyed:
            table = tables[name]
            keys = zip(table["model_id"].to_pylist(), table["revision"].to_pylist(), strict=True)
            mask = pa.array([k not in known for k in keys])
            out[name] = table.filter(mask)
        return out

    def known_revisions(self) -> set[tuple[str, str]]:
        """Every (model_id, revision) already committed."""
        with self.reader() as con:
            return set(con.execute("SELECT DISTINCT model_id, revision FROM models").fetchall())

    def sweep_staging(self) -> int:
        """Remove batches a crashed writer left half-written; returns how many."""
        staging = self.root / "staging"
        leftovers = list(staging.iterdir()) if staging.exists() else []
        with self._lock():
            for path in leftovers:
                shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
