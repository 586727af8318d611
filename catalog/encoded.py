"""A table of one batch encoded to Parquet in memory as its rows arrive.

Encoding is most of a commit's cost (the tensors of 100 small models: 22 MB of float
lists, 60-130 ms), and the last commit of a crawl comes after its last fingerprint, on
the critical path. A crawl appends each piece of rows here as it is converted (the
encoder releases the GIL: it runs beside the fingerprinting), and `Catalog.commit`
then only writes the bytes. Dedupe is unchanged: the commit checks the rows' keys, kept
here, against the catalog under its lock, and where any row must be dropped it decodes
the table and filters it as it would a table given whole (rare: a concurrent writer).
The file has one row group per piece; every reader reads it as one written whole.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.schema import TABLES
from lineage.errors import CatalogError

KEY_COLUMNS = {"models": ("model_id", "revision"), "tensors": ("model_id", "revision", "name")}
COMPRESSION = "zstd"


def conform(name: str, table: pa.Table) -> pa.Table:
    """`table` with the catalog table `name`'s columns, in order, of its types."""
    if name not in TABLES:
        raise CatalogError(
            f"table {name!r}", "is not a catalog table", f"Tables: {', '.join(TABLES)}"
        )
    return table.select(TABLES[name].names).cast(TABLES[name])


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: all but lists of floats (sketches, samples),
    whose values never repeat: trying a dictionary on them costs about as much as the
    rest of the write, and the fallback file is larger."""
    return [
        f.name
        for f in schema
        if not (pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type))
    ]


def key_rows(table: pa.Table, *columns: str) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in columns), strict=True))


class EncodedTable:
    """Rows of the catalog table `name` (models or tensors), encoded as they are added."""

    def __init__(self, name: str) -> None:
        if name not in KEY_COLUMNS:
            raise CatalogError(f"table {name!r}", "cannot be encoded ahead", "models, tensors")
        self.name = name
        self.keys: list[tuple] = []  # KEY_COLUMNS of every row, in order
        self.num_rows = 0
        self._sink = pa.BufferOutputStream()
        schema = TABLES[name]
        self._writer = pq.ParquetWriter(
            self._sink, schema, compression=COMPRESSION, use_dictionary=dictionary_columns(schema)
        )
        self._bytes: pa.Buffer | None = None

    def add(self, table: pa.Table) -> None:
        if self._bytes is not None:
            raise CatalogError(f"encoded {self.name}", "is already closed", "")
        table = conform(self.name, table)
        if table.num_rows:
            self._writer.write_table(table)
            self.keys += key_rows(table, *KEY_COLUMNS[self.name])
            self.num_rows += table.num_rows

    def to_bytes(self) -> pa.Buffer:
        """The finished Parquet file (no row can be added after)."""
        if self._bytes is None:
            self._writer.close()
            self._bytes = self._sink.getvalue()
        return self._bytes

    def to_table(self) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.to_bytes()))
