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
        self._chunks = _Chunks()
        schema = TABLES[name]
        self._writer = pq.ParquetWriter(
            pa.PythonFile(self._chunks, mode="w"),
            schema,
            compression=COMPRESSION,
            use_dictionary=dictionary_columns(schema),
        )
        self._closed = False

    def add(self, table: pa.Table) -> None:
        if self._closed:
            raise CatalogError(f"encoded {self.name}", "is already closed", "")
        table = conform(self.name, table)
        if table.num_rows:
            self._writer.write_table(table)
            self.keys += key_rows(table, *KEY_COLUMNS[self.name])
            self.num_rows += table.num_rows

    def chunks(self) -> list[bytes]:
        """The finished Parquet file, in the pieces it was written in (no row can be
        added after): written to a file one after the other, never joined in memory."""
        if not self._closed:
            self._writer.close()
            self._closed = True
        return self._chunks.parts

    def to_bytes(self) -> bytes:
        """The finished Parquet file, whole."""
        return b"".join(self.chunks())

    def to_table(self) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.to_bytes()))


class _Chunks:
    """The encoder's output, kept as the pieces it writes. One growing buffer (Arrow's
    BufferOutputStream doubles and copies) touched about twice the file's size in fresh
    memory: the first commit of a process paid 60-140 ms of page faults for 20 MB of
    tensors; pieces are each touched once."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
