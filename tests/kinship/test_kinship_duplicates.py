"""Exact duplicates and shared frozen tensors from real fingerprints' content hashes."""

from __future__ import annotations

import shutil

from lineage.fingerprint import fingerprint_model
from lineage.kinship import find_duplicates
from lineage.weights import open_model, write_safetensors


def _rows(model_id: str, path) -> list[tuple[str, str, str, float]]:
    with open_model(path) as model:
        fp = fingerprint_model(model, width=64)
    return [(model_id, t.name, t.content_hash, t.std) for t in fp.tensors]


def test_duplicates_and_frozen_tensors(zoo, tmp_path):
    from safetensors.torch import load_file

    shutil.copytree(zoo["ft1"], tmp_path / "reupload")
    frozen = load_file(zoo["base"] / "model.safetensors")
    frozen["transformer.h.1.mlp.c_fc.weight"] += 0.01  # only this one tensor trained
    write_safetensors(tmp_path / "frozen" / "model.safetensors", frozen)
    rows = (
        _rows("org/ft1", zoo["ft1"])
        + _rows("org/reupload", tmp_path / "reupload")
        + _rows("org/base", zoo["base"])
        + _rows("org/frozen", tmp_path / "frozen")
        + _rows("org/ft2", zoo["ft2"])
    )
    report = find_duplicates(rows)
    assert report.duplicate_groups == [["org/ft1", "org/reupload"]]
    assert report.duplicate_pairs == [("org/ft1", "org/reupload")]
    shared = {(s.a, s.b): s for s in report.shared}
    assert shared[("org/ft1", "org/reupload")].n_shared == 28
    # base's LayerNorm ones/zero biases are constant (std 0): not evidence of kinship.
    n_constant = sum(1 for r in _rows("x", zoo["base"]) if r[3] == 0)
    assert n_constant > 0
    assert shared[("org/base", "org/frozen")].n_shared == 27 - n_constant
    assert shared[("org/base", "org/frozen")].n_a == 28
    assert ("org/base", "org/ft2") not in shared  # every non-constant tensor was trained
    assert report.shared[0].n_shared == 28  # most shared first


def test_without_std_every_tensor_counts_and_fanout_is_capped():
    rows = [(f"m{i}", "embed", "h-embed") for i in range(5)]
    rows += [("m0", "head", "h0"), ("m1", "head", "h0"), ("m2", "head", "h2")]
    report = find_duplicates(rows, max_fanout=3)
    assert report.widely_shared == [("embed", "h-embed", 5)]
    assert [(s.a, s.b, s.n_shared) for s in report.shared] == [("m0", "m1", 1)]
    assert report.duplicate_groups == [["m0", "m1"], ["m3", "m4"]]
