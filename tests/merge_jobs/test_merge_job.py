"""`lineage merge` end to end: catalog ids resolved, output equal to the library's, indexed
with merge edges, idempotent."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from jobs.cli import main
from jobs.merging import run_merge_job
from lineage.errors import ModelNotFoundError, SpecError
from lineage.merge import merge_models
from tests.merge_jobs.conftest import count, tensors_of

RECIPE = {
    "merge_method": "ties",
    "base_model": "org/base",
    "models": [{"model": "org/ft0", "parameters": {"weight": 1.0, "density": 0.5}},
               {"model": "org/ft1", "parameters": {"weight": 0.5, "density": 0.5}}],
    "parameters": {"lambda": 1.0},
    "name": "org/ties-merge",
}


def _write(tmp_path, data, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_merge_resolves_ids_indexes_and_records_edges(tmp_path, catalog, vit_family):
    out = tmp_path / "out" / "merged"
    assert main(["merge", str(_write(tmp_path, RECIPE)), str(out),
                 "--catalog", str(catalog.root)]) == 0
    # The same recipe over local paths, run by the library directly: identical tensors.
    by_path = json.loads(json.dumps(RECIPE).replace('"org/', f'"{vit_family["org/base"].parent}/'))
    ref = merge_models(by_path, tmp_path / "lib", progress=False)
    got, want = tensors_of(out), tensors_of(ref.out_dir)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    card = (out / "README.md").read_text()
    assert "base_model_relation: merge" in card and "- org/ft1" in card
    with catalog.reader() as con:
        src = con.execute("SELECT source FROM current_models WHERE model_id = ?",
                          ["org/ties-merge"]).fetchone()[0]
        edges = con.execute(
            "SELECT parent, relation, confidence, evidence, run_id FROM edges "
            "WHERE child = ? AND source = 'merge-job' ORDER BY parent",
            ["org/ties-merge"]).fetchall()
        run = con.execute("SELECT job, status FROM runs WHERE run_id = ?",
                          [edges[0][4]]).fetchone()
    assert src == f"local:{out.resolve()}"
    assert [e[0] for e in edges] == ["org/base", "org/ft0", "org/ft1"]
    assert {e[1] for e in edges} == {"merge"} and {e[2] for e in edges} == {1.0}
    evidence = {e[0]: json.loads(e[3]) for e in edges}
    assert evidence["org/ft1"]["method"] == "ties" and evidence["org/ft1"]["weight"] == 0.5
    assert evidence["org/ft0"]["weight"] == 1.0 and evidence["org/base"]["role"] == "base"
    assert run == ("merge", "succeeded")


def test_rerun_is_idempotent(tmp_path, catalog):
    recipe = _write(tmp_path, RECIPE)
    out = tmp_path / "merged"
    first = run_merge_job(recipe, out, catalog=catalog)
    tables = ("models", "tensors", "edges", "artifacts")
    before = {t: count(catalog, f"SELECT count(*) FROM {t}") for t in tables}
    again = run_merge_job(recipe, out, catalog=catalog)
    assert first.merged and not again.merged
    assert not again.registered.indexed and again.registered.new_edges == ()
    assert {t: count(catalog, f"SELECT count(*) FROM {t}") for t in tables} == before
    # A different recipe to the same folder is refused, with the way out in the message.
    other = _write(tmp_path, {**RECIPE, "parameters": {"lambda": 0.5}}, "other.yaml")
    with pytest.raises(SpecError, match="already exists.*--overwrite"):
        run_merge_job(other, out, catalog=catalog)


def test_output_id_defaults_to_folder_name(tmp_path, catalog, capsys):
    data = {k: v for k, v in RECIPE.items() if k != "name"}
    out = tmp_path / "my-merge"
    report = run_merge_job(data, out, catalog=catalog)
    assert report.model_id == "my-merge"
    assert count(catalog, "SELECT count(*) FROM edges WHERE child = 'my-merge' "
                          "AND source = 'merge-job'") == 3


def test_no_register_writes_nothing_to_the_catalog(tmp_path, catalog, capsys):
    before = count(catalog, "SELECT count(*) FROM models")
    out = tmp_path / "nr"
    assert main(["merge", str(_write(tmp_path, RECIPE)), str(out), "--no-register",
                 "--catalog", str(catalog.root)]) == 0
    assert (out / "model.safetensors").is_file()
    assert count(catalog, "SELECT count(*) FROM models") == before
    assert "merged 3 models with ties" in capsys.readouterr().out


def test_unknown_model_error_names_it(tmp_path, catalog, capsys):
    bad = {**RECIPE, "models": [{"model": "org/missing", "parameters": {"weight": 1.0}}]}
    with pytest.raises(ModelNotFoundError, match="'org/missing'.*lineage index"):
        run_merge_job(bad, tmp_path / "x", catalog=catalog)
    assert main(["merge", str(_write(tmp_path, bad)), str(tmp_path / "y"),
                 "--catalog", str(catalog.root)]) == 1
    assert "org/missing" in capsys.readouterr().err


def test_list_methods(capsys):
    assert main(["merge", "--list"]) == 0
    out = capsys.readouterr().out
    assert "ubgm: Daheim et al. 2024" in out and "fisher (str, per model" in out
    assert "tall_mask:" in out and "consensus_ties:" in out


def test_cli_runs_a_sliced_frankenmerge_with_edges(tmp_path, catalog, vit_family):
    """`slices:` through `lineage merge`: catalog ids resolved, layers stacked, config's
    layer count updated, a merge edge from every source model."""
    recipe = {"merge_method": "passthrough", "name": "org/franken",
              "slices": [{"sources": [{"model": "org/base", "layer_range": [0, 1]}]},
                         {"sources": [{"model": "org/ft0", "layer_range": [0, 1]}]}]}
    out = tmp_path / "out" / "franken"
    assert main(["merge", str(_write(tmp_path, recipe)), str(out),
                 "--catalog", str(catalog.root)]) == 0
    got, base, ft0 = tensors_of(out), tensors_of(vit_family["org/base"]), tensors_of(
        vit_family["org/ft0"])
    key = "vit.encoder.layer.{}.output.dense.weight"
    assert torch.equal(got[key.format(0)], base[key.format(0)])
    assert torch.equal(got[key.format(1)], ft0[key.format(0)])
    assert torch.equal(got["vit.embeddings.position_embeddings"],
                       base["vit.embeddings.position_embeddings"])
    assert torch.equal(got["vit.layernorm.weight"], ft0["vit.layernorm.weight"])
    assert torch.equal(got["classifier.weight"], ft0["classifier.weight"])
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    with catalog.reader() as con:
        parents = [r[0] for r in con.execute(
            "SELECT parent FROM edges WHERE child = 'org/franken' AND source = 'merge-job' "
            "ORDER BY parent").fetchall()]
    assert parents == ["org/base", "org/ft0"]
