"""The catalog: immutable Parquet batches plus a DuckDB file of state, views and macros.

This package owns every SQL string and the one place that opens DuckDB connections.
"""

from catalog.store import Catalog, default_catalog_dir

__all__ = ["Catalog", "default_catalog_dir"]
