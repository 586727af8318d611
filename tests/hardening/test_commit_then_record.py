"""A crawl's batch and its states on one writer connection (commit_then_record): the
batch is published, then its states recorded; what is committed already is read on that
connection, through the views of the catalog's own directory, so each fact is kept once
as with a commit on its own connection. Models encoded as they come commit the rows the
same models given whole commit."""

from __future__ import annotations

import shutil

from catalog import Catalog
from catalog.crawl_state import commit_then_record, states
from catalog.encoded import EncodedTable
from catalog.query import run_query
from catalog.rows import tables_per_model
from catalog.runs import run_status, start_run
from tests.hardening.test_encoded_commit import fingerprinted

MODEL_ROWS = "SELECT model_id, revision, n_params, sketch FROM models ORDER BY ALL"


def encoded(items, run_id: str, pieces: int = 2) -> dict:
    """models and tensors encoded piece by piece, edges whole, as a crawl builds them."""
    tables = {"models": EncodedTable("models"), "tensors": EncodedTable("tensors")}
    step = max(1, len(items) // pieces)
    for start in range(0, len(items), step):
        piece, unfit = tables_per_model(items[start : start + step], run_id)
        assert not unfit
        for name in tables:
            tables[name].add(piece[name])
    tables["edges"] = tables_per_model(items, run_id)[0]["edges"]
    return tables


def done(items) -> list[tuple[str, str, str, None]]:
    return [(ref.model_id, ref.revision, "done", None) for ref, _ in items]


def test_the_batch_then_its_states_on_one_connection(tmp_path):
    items = fingerprinted(tmp_path, 4)
    catalog = Catalog(tmp_path / "catalog")
    run_id = start_run(catalog, "index", {})
    later = ("org/later", "f" * 40)
    commit_then_record(catalog, encoded(items, run_id), done(items), [later], run_id)
    whole = Catalog(tmp_path / "whole")
    whole.commit(tables_per_model(items, run_id)[0])
    assert run_query(catalog, MODEL_ROWS).rows == run_query(whole, MODEL_ROWS).rows
    assert len(run_query(catalog, MODEL_ROWS).rows) == 4
    recorded = states(catalog)
    assert {k: v["status"] for k, v in recorded.items()} == {
        **{(ref.model_id, ref.revision): "done" for ref, _ in items},
        later: "pending",
    }
    assert run_status(catalog, run_id) == "succeeded"


def test_revisions_committed_before_are_dropped_on_the_writer_connection(tmp_path):
    items = fingerprinted(tmp_path, 4)
    catalog = Catalog(tmp_path / "catalog")
    catalog.commit(tables_per_model(items[:2], "run-1")[0])
    commit_then_record(catalog, encoded(items[1:], "run-2"), done(items[1:]))
    rows = run_query(catalog, "SELECT model_id, run_id FROM models ORDER BY ALL").rows
    assert rows == [("org/m0", "run-1"), ("org/m1", "run-1"), ("org/m2", "run-2"),
                    ("org/m3", "run-2")]
    tensors = run_query(catalog, "SELECT count(*), count(DISTINCT (model_id, name)) "
                                 "FROM tensors").rows
    assert tensors[0][0] == tensors[0][1]  # no tensor twice


def test_a_moved_catalog_reads_its_own_parts_on_the_writer_connection(tmp_path):
    items = fingerprinted(tmp_path, 3)
    first = Catalog(tmp_path / "first")
    first.commit(tables_per_model(items[:2], "run-1")[0])
    shutil.copytree(first.root, tmp_path / "moved")
    shutil.rmtree(first.root)  # views stored for the old directory now read nothing
    moved = Catalog(tmp_path / "moved")
    commit_then_record(moved, encoded(items, "run-2"), done(items))
    rows = run_query(moved, "SELECT model_id, run_id FROM models ORDER BY ALL").rows
    assert rows == [("org/m0", "run-1"), ("org/m1", "run-1"), ("org/m2", "run-2")]


def test_states_alone_commit_nothing(tmp_path):
    items = fingerprinted(tmp_path, 1)
    catalog = Catalog(tmp_path / "catalog")
    commit_then_record(catalog, None, [("org/m0", "0" * 40, "failed", "bad header")])
    assert run_query(catalog, "SELECT count(*) FROM models").rows == [(0,)]
    assert states(catalog)[("org/m0", "0" * 40)]["error"] == "bad header"
    assert items  # the fingerprints were never committed


def test_an_encoded_table_is_kept_in_the_pieces_it_was_written_in(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from lineage.errors import CatalogError

    items = fingerprinted(tmp_path, 4)
    table = EncodedTable("tensors")
    pieces = [tables_per_model(items[i : i + 2], "run")[0]["tensors"] for i in (0, 2)]
    for piece in pieces:
        table.add(piece)
    chunks = table.chunks()
    assert len(chunks) > 2 and all(isinstance(c, bytes) for c in chunks)
    assert b"".join(chunks) == table.to_bytes()
    assert chunks[0][:4] == b"PAR1" and chunks[-1][-4:] == b"PAR1"
    read = pq.read_table(pa.BufferReader(table.to_bytes()))
    assert read.num_rows == sum(p.num_rows for p in pieces) > 0
    assert read.equals(pa.concat_tables(pieces).cast(read.schema))
    assert pq.ParquetFile(pa.BufferReader(table.to_bytes())).num_row_groups == 2
    with pytest.raises(CatalogError, match="already closed"):
        table.add(pieces[0])
