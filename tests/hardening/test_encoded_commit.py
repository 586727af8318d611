"""A batch whose tensors were encoded to Parquet as they came (catalog.encoded) commits
exactly the rows the same batch given whole commits, and keeps each fact once: rows of a
revision already committed, or repeated in the batch, are dropped as from a whole table."""

from __future__ import annotations

from catalog import Catalog
from catalog.encoded import EncodedTable
from catalog.query import run_query
from catalog.rows import ModelRef, tables_per_model
from catalog.store import SCHEMA_BATCH
from lineage.fingerprint import fingerprint_model
from lineage.weights import open_model
from tests.hardening.corpus import good_model

TENSOR_ROWS = (
    "SELECT model_id, revision, name, shape, content_hash, mean, std, sketch, rank_sketch, "
    "sample FROM tensors ORDER BY ALL"
)


def fingerprinted(tmp_path, n: int) -> list[tuple[ModelRef, object]]:
    items = []
    for i in range(n):
        with open_model(good_model(tmp_path / "models" / f"m{i}", i)) as model:
            items.append((ModelRef(f"org/m{i}", f"{i:040x}", "test"), fingerprint_model(model)))
    return items


def encoded_batch(items, run_id: str, pieces: int) -> dict:
    """models and edges whole, tensors encoded piece by piece, as a crawl builds them."""
    encoded = EncodedTable("tensors")
    step = max(1, len(items) // pieces)
    for start in range(0, len(items), step):
        tables, unfit = tables_per_model(items[start : start + step], run_id)
        assert not unfit
        encoded.add(tables["tensors"])
    whole, _ = tables_per_model(items, run_id)
    return {"models": whole["models"], "tensors": encoded, "edges": whole["edges"]}


def reference(tmp_path, items) -> Catalog:
    """The same models committed whole, once each."""
    catalog = Catalog(tmp_path / "reference")
    catalog.commit(tables_per_model(items, "run")[0])
    return catalog


def parts(catalog: Catalog) -> int:
    return sum(1 for p in catalog.parts.iterdir() if p.name != SCHEMA_BATCH)


def test_an_encoded_batch_commits_what_the_whole_batch_commits(tmp_path):
    items = fingerprinted(tmp_path, 5)
    whole, encoded = Catalog(tmp_path / "whole"), Catalog(tmp_path / "encoded")
    tables, _ = tables_per_model(items, "run")
    assert whole.commit(tables) is not None
    batch = encoded_batch(items, "run", pieces=3)
    assert batch["tensors"].num_rows == tables["tensors"].num_rows
    assert encoded.commit(batch) is not None
    assert parts(encoded) == 1
    expected = run_query(whole, TENSOR_ROWS).rows
    assert len(expected) == tables["tensors"].num_rows
    assert run_query(encoded, TENSOR_ROWS).rows == expected
    models = "SELECT model_id, revision, n_params, sketch FROM models ORDER BY ALL"
    assert run_query(encoded, models).rows == run_query(whole, models).rows


def test_an_encoded_batch_drops_revisions_already_committed(tmp_path):
    items = fingerprinted(tmp_path, 4)
    catalog = Catalog(tmp_path / "catalog")
    first, _ = tables_per_model(items[:2], "run-1")  # m0 and m1 are in the catalog
    catalog.commit(first)
    batch = encoded_batch([*items[1:], items[3]], "run-2", pieces=2)  # m1 again, m3 twice
    assert catalog.commit(batch) is not None
    tensors = run_query(
        catalog, "SELECT model_id, count(*) FROM tensors GROUP BY ALL ORDER BY ALL"
    ).rows
    per_model = len(items[0][1].tensors)
    assert tensors == [(f"org/m{i}", per_model) for i in range(4)]  # m1 once, m3 once
    models = run_query(catalog, "SELECT model_id, run_id FROM models ORDER BY ALL").rows
    assert models == [
        ("org/m0", "run-1"), ("org/m1", "run-1"), ("org/m2", "run-2"), ("org/m3", "run-2")
    ]
    expected = run_query(reference(tmp_path, items), TENSOR_ROWS).rows
    assert run_query(catalog, TENSOR_ROWS).rows == expected  # the rows themselves too
    again = encoded_batch(items[:2], "run-3", pieces=1)  # nothing new at all
    assert catalog.commit(again) is None
    assert parts(catalog) == 2
