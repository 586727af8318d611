"""Index real model folders, then read every value back through SQL."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.stats

from catalog import Catalog
from catalog.query import run_query
from jobs.local_index import index_local
from lineage.errors import CatalogError, ReadOnlyQueryError
from lineage.weights import open_model


@pytest.fixture
def indexed(models_dir, tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    report = index_local(catalog, [models_dir], progress=False)
    return catalog, report


def test_index_finds_every_model_and_records_metadata(indexed):
    catalog, report = indexed
    assert sorted(report.indexed) == [
        "org/gpt2",
        "org/gpt2-sharded",
        "org/lora",
        "org/pipe",
        "org/vit",
    ]
    rows = run_query(
        catalog,
        "SELECT model_id, kind, model_type, card_base_models, "
        "card_relation, license, adapter_base, adapter_rank FROM models "
        "ORDER BY model_id",
    ).rows
    by_id = {r[0]: r for r in rows}
    assert by_id["org/gpt2"][1:6] == (
        "transformers",
        "gpt2",
        ["org/gpt2-base"],
        "finetune",
        "apache-2.0",
    )
    assert by_id["org/lora"][1] == "peft-adapter"
    assert by_id["org/lora"][6:] == ("org/gpt2", 4)
    assert by_id["org/pipe"][1] == "diffusers"


def test_tensor_statistics_match_numpy(indexed, models_dir):
    catalog, _ = indexed
    rows = run_query(
        catalog,
        "SELECT name, numel, mean, std, kurtosis, min, max FROM tensors "
        "WHERE model_id = ? ORDER BY name",
        ["org/vit"],
    ).rows
    with open_model(models_dir / "org/vit") as model:
        assert [r[0] for r in rows] == sorted(model.names())
        for name, numel, mean, std, kurt, low, high in rows:
            values = model.tensor(name).double().numpy().ravel()
            assert numel == values.size
            assert mean == pytest.approx(values.mean(), abs=1e-12)
            assert std == pytest.approx(values.std(), abs=1e-12)
            assert (low, high) == (values.min(), values.max())
            if values.std() > 0:
                assert kurt == pytest.approx(scipy.stats.kurtosis(values), rel=1e-6)


def test_sharded_and_single_copies_share_every_content_hash(indexed):
    catalog, _ = indexed
    shared = run_query(
        catalog, "SELECT count(*) FROM shared_tensors(?, ?)", ["org/gpt2", "org/gpt2-sharded"]
    ).rows[0][0]
    total = run_query(catalog, "SELECT count(*) FROM tensors WHERE model_id = 'org/gpt2'").rows
    assert shared == total[0][0] == 28


def test_sketch_inner_products_in_sql_match_exact(indexed, models_dir):
    catalog, _ = indexed
    rows = run_query(
        catalog,
        "SELECT a.name, list_dot_product(a.sketch, b.sketch) FROM "
        "tensors a JOIN tensors b USING (name) WHERE a.model_id = 'org/gpt2' "
        "AND b.model_id = 'org/gpt2-sharded'",
    ).rows
    with open_model(models_dir / "org/gpt2") as model:
        for name, dot in rows:
            exact = float((model.tensor(name).double() ** 2).sum())
            assert dot == pytest.approx(exact, rel=1e-4, abs=1e-6)  # small tensors: exact


def test_reindexing_is_idempotent_and_a_changed_model_is_indexed_anew(
    indexed, models_dir, tmp_path
):
    catalog, _ = indexed
    count = "SELECT count(*) FROM tensors"
    before = run_query(catalog, count).rows[0][0]
    again = index_local(catalog, [models_dir], progress=False)
    assert again.indexed == [] and len(again.unchanged) == 5
    assert run_query(catalog, count).rows[0][0] == before
    # An exact copy (same files, sizes, times) under the same id is the same revision.
    copy = tmp_path / "copies" / "org" / "vit"
    shutil.copytree(models_dir / "org/vit", copy)
    assert index_local(catalog, [tmp_path / "copies"], progress=False).unchanged == ["org/vit"]
    (copy / "README.md").write_text("---\nbase_model: org/vit\n---\n")
    third = index_local(catalog, [tmp_path / "copies"], progress=False)
    assert third.indexed == ["org/vit"]
    revisions = run_query(
        catalog, "SELECT count(DISTINCT revision) FROM models WHERE model_id = 'org/vit'"
    ).rows[0][0]
    assert revisions == 2
    latest = run_query(
        catalog, "SELECT card_base_models FROM current_models WHERE model_id = 'org/vit'"
    ).rows
    assert latest == [(["org/vit"],)]


def test_a_crashed_batch_is_never_visible(indexed):
    catalog, _ = indexed
    before = run_query(catalog, "SELECT count(*) FROM models").rows[0][0]
    half = catalog.root / "staging" / "crashed-batch"
    half.mkdir(parents=True)
    shutil.copy(next(catalog.parts.glob("*/models.parquet")), half / "models.parquet")
    assert run_query(catalog, "SELECT count(*) FROM models").rows[0][0] == before
    assert catalog.sweep_staging() == 1 and not half.exists()


def test_card_edges_and_ancestors_macro(indexed):
    catalog, _ = indexed
    rows = run_query(
        catalog, "SELECT parent, child, relation FROM edges WHERE source = 'card' ORDER BY child"
    ).rows
    assert ("org/gpt2-base", "org/gpt2", "finetune") in rows
    assert ("org/gpt2", "org/lora", "adapter") in rows
    up = run_query(catalog, "SELECT * FROM ancestors('org/lora', edge_source := 'card')").rows
    assert up == [("org/gpt2", 1), ("org/gpt2-base", 2)]


def test_failed_model_is_recorded_and_the_rest_indexed(models_dir, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(models_dir / "org/vit", root / "good")
    (root / "bad").mkdir()
    (root / "bad" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    catalog = Catalog(tmp_path / "cat")
    report = index_local(catalog, [root], progress=False)
    assert report.indexed == ["good"]
    assert "bad" in report.failed and "model.safetensors" in report.failed["bad"]
    state = run_query(
        catalog, "SELECT model_id, status, error FROM crawl_state WHERE status = 'failed'"
    ).rows
    assert [row[:2] for row in state] == [("bad", "failed")]
    assert "header length field runs past the end of the 12-byte file" in state[0][2]


@pytest.mark.parametrize(
    "sql,fragment",
    [
        ("INSERT INTO runs VALUES ('x','y',NULL,now(),NULL,'z')", "INSERT statement"),
        ("DELETE FROM crawl_state", "DELETE statement"),
        ("COPY (SELECT 1) TO '/tmp/lineage-out.csv'", "COPY statement"),
        ("ATTACH '/tmp/other.duckdb'", "ATTACH statement"),
        ("INSTALL httpfs", "statement"),
        ("LOAD httpfs", "statement"),
        ("SET enable_external_access = true", "SET statement"),
        ("SELECT 1; DROP VIEW models", "DROP statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "reaches outside the catalog"),
        ("SELECT * FROM read_text('/etc/hostname')", "reaches outside the catalog"),
    ],
)
def test_sql_refuses_anything_but_reading_the_catalog(indexed, sql, fragment):
    catalog, _ = indexed
    with pytest.raises(ReadOnlyQueryError) as err:
        run_query(catalog, sql)
    assert fragment in str(err.value)


def test_sql_binds_parameters_instead_of_formatting_them(indexed):
    catalog, _ = indexed
    hostile = "org/vit' OR '1'='1"
    assert run_query(catalog, "SELECT count(*) FROM models WHERE model_id = ?", [hostile]).rows == [
        (0,)
    ]
    assert run_query(
        catalog, "SELECT count(*) FROM models WHERE model_id = ?", ["org/vit"]
    ).rows == [(1,)]


def test_opening_a_missing_catalog_says_what_to_do(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog(tmp_path / "nope", create=False)


def test_catalog_moved_to_another_folder_still_reads(indexed, tmp_path):
    catalog, _ = indexed
    moved = tmp_path / "moved"
    shutil.copytree(catalog.root, moved)
    shutil.rmtree(catalog.root)
    assert run_query(Catalog(moved, create=False), "SELECT count(*) FROM models").rows == [(5,)]


def temporary_views(catalog: Catalog) -> int:
    with catalog.reader() as con:
        sql = "SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal"
        return con.execute(sql).fetchone()[0]


def test_a_reader_uses_the_stored_views_only_where_they_were_made(indexed, tmp_path):
    catalog, _ = indexed
    assert temporary_views(catalog) == 0  # made here, by this code: used as stored
    moved = tmp_path / "moved"
    shutil.copytree(catalog.root, moved)
    assert temporary_views(Catalog(moved, create=False)) > 0  # they name the old folder
    with catalog.writer() as con:  # views stored by code whose views.sql differed
        con.execute("UPDATE catalog_meta SET value = 'other' WHERE key = 'views'")
    assert temporary_views(catalog) > 0
    assert run_query(catalog, "SELECT count(*) FROM models").rows == [(5,)]


def test_model_sketches_are_stored_with_fixed_width(indexed):
    catalog, _ = indexed
    widths = run_query(catalog, "SELECT DISTINCT len(sketch), sketch_width FROM models").rows
    assert widths == [(4096, 4096)]
    norm = run_query(
        catalog, "SELECT list_dot_product(sketch, sketch) FROM models WHERE model_id = 'org/vit'"
    ).rows[0][0]
    assert np.isfinite(norm) and norm > 0
