"""Turn fingerprints and edges into Arrow tables shaped like the catalog's schemas."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

# ListArray.from_arrays with a mask imports pyarrow.compute on first use (~0.1 s holding
# the GIL: a crawl's threads stalled on it): imported with this module instead
import pyarrow.compute  # noqa: F401

from catalog.schema import EDGES, MODELS, TENSORS
from lineage.fingerprint import ModelFingerprint


@dataclass(frozen=True)
class ModelRef:
    """Identity of an indexed model: its id, revision and where it came from."""

    model_id: str
    revision: str
    source: str
    created_at: datetime | None = None


def _main_dtype(fp: ModelFingerprint) -> str | None:
    by_bytes: dict[str, int] = {}
    for t in fp.tensors:
        by_bytes[t.dtype] = by_bytes.get(t.dtype, 0) + t.numel
    return max(by_bytes, key=by_bytes.get) if by_bytes else None


def model_row(ref: ModelRef, fp: ModelFingerprint, run_id: str) -> dict:
    return {**_model_values(ref, fp, run_id), "sketch": fp.sketch.tolist()}


def _model_values(ref: ModelRef, fp: ModelFingerprint, run_id: str) -> dict:
    """model_row without the sketch (a batch builds that column from the arrays)."""
    meta = fp.metadata
    library = {"diffusers": "diffusers", "peft-adapter": "peft"}.get(meta.kind, "transformers")
    return {
        "model_id": ref.model_id,
        "revision": ref.revision,
        "source": ref.source,
        "kind": meta.kind,
        "arch_signature": meta.arch_signature,
        "model_type": meta.model_type,
        "architectures": list(meta.architectures),
        "library": library,
        "n_params": meta.n_params,
        "n_bytes": meta.n_bytes,
        "dtype": _main_dtype(fp),
        "card_base_models": list(meta.base_models),
        "card_relation": meta.card.relation,
        "card_error": meta.card.error,
        "license": meta.card.license,
        "tags": list(meta.card.tags),
        "adapter_base": meta.adapter_base,
        "adapter_rank": meta.adapter_rank,
        "created_at": ref.created_at,
        "indexed_at": datetime.now(UTC),
        "run_id": run_id,
        "sketch_width": fp.sketch_width,
    }


def tensor_rows(ref: ModelRef, fp: ModelFingerprint) -> dict[str, list]:
    """The model's tensor rows as columns (built column by column: a dict per row cost
    ~25 us a tensor)."""
    ts = fp.tensors
    columns = {
        "model_id": [ref.model_id] * len(ts),
        "revision": [ref.revision] * len(ts),
        "shape": [list(t.shape) for t in ts],
    }
    # every other column is the tensor fingerprint's field of the same name
    return {name: columns[name] if name in columns else [getattr(t, name) for t in ts]
            for name in TENSORS.names}


def card_edge_rows(ref: ModelRef, fp: ModelFingerprint, run_id: str) -> list[dict]:
    """Edges the model's card (or adapter config) declares: evidence, not truth."""
    meta = fp.metadata
    relation = meta.card.relation or ("adapter" if meta.kind == "peft-adapter" else "finetune")
    if len(meta.base_models) > 1 and not meta.card.relation:
        relation = "merge"
    return [
        {
            "parent": parent,
            "child": ref.model_id,
            "relation": relation,
            "confidence": None,
            "evidence": json.dumps({"from": "card" if meta.card.base_models else "adapter_config"}),
            "source": "card",
            "run_id": run_id,
        }
        for parent in meta.base_models
    ]


def fingerprint_tables(
    items: Iterable[tuple[ModelRef, ModelFingerprint]], run_id: str
) -> dict[str, pa.Table]:
    """models, tensors and card edges for a batch of fingerprinted models.

    Raises if any model's values do not fit the schema; `tables_per_model` is the
    variant that sets such a model aside instead."""
    tables, _ = tables_per_model(items, run_id, isolate=False)
    return tables


def tables_per_model(
    items: Iterable[tuple[ModelRef, ModelFingerprint]], run_id: str, *, isolate: bool = True
) -> tuple[dict[str, pa.Table], dict[str, str]]:
    """(tables of the models whose rows fit the schema, {model_id: why} of the others).

    Each model is converted on its own, so one model whose metadata slipped past the
    readers with a value Arrow cannot hold (a wrong type, an overflowing number) fails
    alone instead of taking its batch with it."""
    items = list(items)
    try:  # the common case: every model fits, converted in one go (a table per model
        return _batch_tables(items, run_id), {}  # costs ~2 ms of fixed Arrow overhead)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        if not isolate:
            raise
    parts: list[dict[str, pa.Table]] = []
    failed: dict[str, str] = {}
    for ref, fp in items:
        try:
            parts.append(_model_tables(ref, fp, run_id))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as err:
            if not isolate:
                raise
            failed[ref.model_id] = (
                f"model {ref.model_id}: its metadata does not fit the catalog schema "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}). "
                "Fix its config.json / adapter_config.json and index it again"
            )
    tables = {
        name: pa.concat_tables([p[name] for p in parts]) if parts else schema.empty_table()
        for name, schema in (("models", MODELS), ("tensors", TENSORS), ("edges", EDGES))
    }
    return tables, failed


FLOAT_LISTS = ("sketch", "rank_sketch", "sample")  # float32 arrays per tensor, or None


def _float_lists(arrays: list) -> pa.Array:
    """A list<float32> column from float32 arrays (None: null) in one copy; pyarrow's
    conversion of a Python list of arrays costs ~20 us per array."""
    lengths = np.fromiter((0 if a is None else len(a) for a in arrays), np.int32, len(arrays))
    offsets = np.zeros(len(arrays) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [a for a in arrays if a is not None]
    values = (
        np.concatenate(present, dtype=np.float32, casting="unsafe")
        if present
        else np.zeros(0, np.float32)
    )
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), mask=mask)


def _batch_tables(items: list[tuple[ModelRef, ModelFingerprint]], run_id: str
                  ) -> dict[str, pa.Table]:
    """The three tables of all `items` at once (raises if any model does not fit)."""
    columns: dict[str, list] = {name: [] for name in TENSORS.names}
    for ref, fp in items:
        for key, values in tensor_rows(ref, fp).items():
            columns[key].extend(values)
    for key in FLOAT_LISTS:
        columns[key] = _float_lists(columns[key])
    return {
        "models": _models_table(items, run_id),
        "tensors": pa.Table.from_pydict(columns, schema=TENSORS),
        "edges": pa.Table.from_pylist(
            [e for r, f in items for e in card_edge_rows(r, f, run_id)], schema=EDGES),
    }


def _models_table(items: list[tuple[ModelRef, ModelFingerprint]], run_id: str) -> pa.Table:
    """The models rows, their sketches as one float32 column (converting a Python list
    of 4096 floats per model cost ~0.1 ms a model)."""
    rows = [_model_values(r, f, run_id) for r, f in items]
    columns = {
        name: [row[name] for row in rows] for name in MODELS.names if name != "sketch"
    }
    columns["sketch"] = _float_lists([np.asarray(f.sketch) for _, f in items])
    return pa.Table.from_pydict({name: columns[name] for name in MODELS.names}, schema=MODELS)


def _model_tables(ref: ModelRef, fp: ModelFingerprint, run_id: str) -> dict[str, pa.Table]:
    return {
        "models": pa.Table.from_pylist([model_row(ref, fp, run_id)], schema=MODELS),
        "tensors": pa.Table.from_pydict(tensor_rows(ref, fp), schema=TENSORS),
        "edges": pa.Table.from_pylist(card_edge_rows(ref, fp, run_id), schema=EDGES),
    }
