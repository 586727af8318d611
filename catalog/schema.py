"""Arrow schemas of the Parquet tables. Views read them with union_by_name, so a column
added in a later schema version reads as NULL in older batches.

SCHEMA_VERSION numbers the Parquet schema: a catalog holds one zero-row batch per
version (parts/0000000N-schema, see store.py), which gives the views every column of
that version even before a batch with data arrives. Version 2 added the recovery
evidence of 2-D matrices to `tensors` (rank_sketch, rank_width, sample, sample_size;
migration 0002)."""

from __future__ import annotations

import pyarrow as pa

SKETCH = pa.list_(pa.float32())
SCHEMA_VERSION = 2

MODELS = pa.schema(
    [
        ("model_id", pa.string()),
        ("revision", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("arch_signature", pa.string()),
        ("model_type", pa.string()),
        ("architectures", pa.list_(pa.string())),
        ("library", pa.string()),
        ("n_params", pa.int64()),
        ("n_bytes", pa.int64()),
        ("dtype", pa.string()),
        ("card_base_models", pa.list_(pa.string())),
        ("card_relation", pa.string()),
        ("card_error", pa.string()),
        ("license", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("adapter_base", pa.string()),
        ("adapter_rank", pa.int32()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("indexed_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        ("sketch_width", pa.int32()),
        ("sketch", SKETCH),
    ]
)

TENSORS = pa.schema(
    [
        ("model_id", pa.string()),
        ("revision", pa.string()),
        ("name", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("dtype", pa.string()),
        ("numel", pa.int64()),
        ("content_hash", pa.string()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("kurtosis", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("sketch", SKETCH),
        # Recovery evidence (schema 2), NULL for non-matrices and for older batches:
        ("rank_sketch", SKETCH),  # float32 [k1 * k2] row-major: L W R (fingerprint/rank_sketch)
        ("rank_width", pa.int32()),  # k; k1 = min(rows, k), k2 = min(cols, k)
        ("sample", SKETCH),  # float32 values at fixed coordinates (fingerprint/sample)
        ("sample_size", pa.int32()),  # the sample size that seeded the coordinates
    ]
)

KINSHIP = pa.schema(
    [
        ("a", pa.string()),
        ("b", pa.string()),
        ("base", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("method", pa.string()),  # exact | sketch
        ("run_id", pa.string()),
    ]
)

EDGES = pa.schema(
    [
        ("parent", pa.string()),
        ("child", pa.string()),
        ("relation", pa.string()),  # finetune | adapter | merge | quantized | reupload
        ("confidence", pa.float64()),
        ("evidence", pa.string()),  # JSON text
        ("source", pa.string()),  # card | recovered | merge-job
        ("run_id", pa.string()),
    ]
)

ARTIFACTS = pa.schema(
    [
        ("model_id", pa.string()),
        ("kind", pa.string()),  # fisher | tall-compressed | ...
        ("path", pa.string()),
        ("params", pa.string()),  # JSON text
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "models": MODELS,
    "tensors": TENSORS,
    "kinship": KINSHIP,
    "edges": EDGES,
    "artifacts": ARTIFACTS,
}
