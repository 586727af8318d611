"""lineage: recover the heredity of neural networks from their weights.

This package is the pure library: tensors in, numbers out. It never imports Ray or
DuckDB (tests/test_purity.py enforces it), so it works as a plain notebook library.
"""

__version__ = "0.1.0"
