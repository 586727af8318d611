"""The miniature merge benchmark in the merging papers' regime (see bench/merge_regime.py)."""
