"""Recovery from the catalog alone on the real `tiny` zoo: the rank sketches give the
ranks the weights give, LoRA edges are labelled from them, and a catalog written before
the evidence existed still recovers and says once what it lacks."""

from __future__ import annotations

import json
import shutil
from itertools import combinations

import duckdb
import numpy as np
import pyarrow.parquet as pq

from catalog import Catalog
from catalog.recovery_io import load_inputs
from catalog.schema import SCHEMA_VERSION
from jobs.cli import main as cli
from jobs.recover import run_recover, summary
from lineage.recovery import RecoveryOptions
from lineage.recovery.features import group_features
from lineage.recovery.rank import sketch_rank, weight_rank
from lineage.weights import open_model

EVIDENCE = ["rank_sketch", "rank_width", "sample", "sample_size"]


def _weights(root, model_id: str) -> dict[str, np.ndarray]:
    with open_model(root / model_id) as model:
        return {n: model.tensor(n).double().numpy() for n in model.names()}


def test_sketch_ranks_equal_the_ranks_of_the_weights(tiny_catalog, tiny_root):
    models, _ = load_inputs(tiny_catalog)
    groups: dict[str, list] = {}
    for m in models:
        if not m.is_adapter:
            groups.setdefault(m.arch_signature, []).append(m)
    checked = 0
    for members in groups.values():
        f = group_features(members)
        weights = {mid: _weights(tiny_root, mid) for mid in f.ids}
        for i, j in combinations(range(f.n), 2):
            for q in np.flatnonzero(f.square):
                w_i, w_j = weights[f.ids[i]][f.names[q]], weights[f.ids[j]][f.names[q]]
                exact = weight_rank(w_i, w_j, f.roundoff[i, q], f.roundoff[j, q])
                capacity = min(f.rank_sketches[q].shape[1:])
                assert sketch_rank(f, i, j, q) == min(exact, capacity), (f.ids[i], f.ids[j])
                checked += 1
    assert checked > 100


def test_both_lora_edges_are_labelled_lora(recovered, tiny_truth):
    lora = {(n["parents"][0], n["id"]) for n in tiny_truth["nodes"] if n["relation"] == "lora"}
    found = {(e.parent, e.child) for e in recovered.result.edges if e.relation == "lora"}
    assert len(lora) == 2 and found == lora
    for e in recovered.result.edges:
        if e.relation == "lora":  # ranks come from the sketches, per changed matrix
            ranks = e.evidence["ranks"]
            attention = [r for name, r in ranks.items() if "attention" in name or "attn" in name]
            assert attention and max(attention) <= 8  # the LoRA targets; a head trains fully


def _private_copy(catalog: Catalog, dest) -> Catalog:
    """A copy of the session's tiny catalog for a test that recovers: a recover run
    becomes the catalog's latest, which the SQL macros read (test_tiny_zoo's checks
    compare them with the `recovered` fixture's run)."""
    shutil.copytree(catalog.root, dest)
    return Catalog(dest, create=False)


def _make_old(catalog: Catalog, dest) -> Catalog:
    """A copy of `catalog` as schema 1 wrote it: no evidence columns, no schema-2 batch,
    migration 0002 not applied."""
    shutil.copytree(catalog.root, dest)
    (dest / ".initialised").unlink()  # schema 1 wrote no creation marker
    parts = dest / "parts"
    shutil.rmtree(parts / f"{SCHEMA_VERSION:08d}-schema")
    for path in parts.glob("*/tensors.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([c for c in EVIDENCE if c in table.column_names]),
                       path)
    with duckdb.connect(str(dest / "catalog.duckdb")) as con:
        con.execute("DELETE FROM schema_migrations WHERE version >= 2")
    return Catalog(dest, create=False)  # opening upgrades it


def test_an_old_catalog_recovers_and_says_once_what_it_lacks(tiny_catalog, recovered, tmp_path,
                                                            capsys):
    old = _make_old(tiny_catalog, tmp_path / "old")
    assert (old.parts / f"{SCHEMA_VERSION:08d}-schema" / "tensors.parquet").exists()
    with duckdb.connect(str(old.db_path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 3
    report = run_recover(old)
    notes = [n for n in report.result.notes if "indexed before" in n]
    assert len(notes) == 1 and "lineage index --catalog NEW" in notes[0]
    assert summary(report).count("indexed before") == 1
    # no rank sketches, yet the LoRA children are still read: what a merged adapter
    # left untouched is in the content hashes every catalog has (frozen.py)
    def lora_edges(r):
        return {(e.parent, e.child) for e in r.result.edges if e.relation == "lora"}
    assert lora_edges(report) and lora_edges(report) == lora_edges(recovered)
    assert "finetune" in {e.relation for e in report.result.edges}
    assert cli(["recover", "--catalog", str(old.root)]) == 0
    assert capsys.readouterr().out.count("indexed before") == 1


def test_no_ranks_is_accepted_with_a_deprecation_warning(tiny_catalog, tmp_path, capsys):
    copy = _private_copy(tiny_catalog, tmp_path / "copy")
    assert cli(["recover", "--catalog", str(copy.root), "--no-ranks"]) == 0
    captured = capsys.readouterr()
    assert "--no-ranks is deprecated and ignored" in captured.err
    assert "lora 2" in captured.out  # ranks are read all the same


def test_weights_only_recovery_from_the_command_line(tiny_catalog, tmp_path, capsys):
    copy = _private_copy(tiny_catalog, tmp_path / "copy")
    assert cli(["recover", "--catalog", str(copy.root), "--weights-only", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    blind = run_recover(copy, options=RecoveryOptions(use_cards=False))
    assert sorted((e["parent"], e["child"], e["relation"]) for e in printed["edges"]) == \
        sorted((e.parent, e.child, e.relation) for e in blind.result.edges)
    # LoRA ranks, casts and adapters come from the weights and their configs alone
    assert {"lora", "adapter"} <= {e.relation for e in blind.result.edges}
