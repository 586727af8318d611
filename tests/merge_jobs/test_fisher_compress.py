"""`lineage fisher` registers a Fisher that a UBGM recipe finds with `fisher: catalog`;
`lineage compress`/`reconstruct` match the library and register their bundle."""

from __future__ import annotations

import pytest
import torch

from catalog.artifacts import FISHER, TALL, find_artifacts
from jobs.cli import main
from jobs.merging import run_merge_job
from jobs.merging.fisher_job import as_saved, load_batches, load_module
from lineage.errors import ModelNotFoundError
from lineage.merge import compress, estimate_fisher, merge_models, reconstruct
from tests.merge_jobs.conftest import tensors_of


def _fisher(catalog, tmp_path, model, n=8):
    out = tmp_path / f"{model.replace('/', '_')}.fisher.safetensors"
    assert main(["fisher", model, "--data", "zoo:digits", "--out", str(out), "--n", str(n),
                 "--catalog", str(catalog.root)]) == 0
    return out


def test_fisher_registered_and_used_by_ubgm(tmp_path, catalog, vit_family, capsys):
    paths = {m: _fisher(catalog, tmp_path, m) for m in ("org/ft0", "org/ft1")}
    assert "registered" in capsys.readouterr().out
    # The file holds what estimate_fisher gives, under the checkpoint's own tensor names.
    module = load_module(vit_family["org/ft0"])
    direct = as_saved(module, estimate_fisher(module, load_batches("zoo:digits", 8),
                                              n_samples=8))
    stored = tensors_of(paths["org/ft0"])
    assert set(stored) <= set(tensors_of(vit_family["org/ft0"]))
    assert stored.keys() == direct.keys()
    for name, value in direct.items():
        torch.testing.assert_close(stored[name], value)
    assert stored["vit.encoder.layer.0.attention.attention.query.weight"].abs().sum() > 0
    rows = find_artifacts(catalog, "org/ft0", FISHER)
    assert len(rows) == 1 and rows[0].params["n_examples"] == 8
    _fisher(catalog, tmp_path, "org/ft0")  # same model, same settings: no second row
    assert len(find_artifacts(catalog, "org/ft0", FISHER)) == 1

    recipe = {"merge_method": "ubgm", "base_model": "org/base",
              "models": [{"model": "org/ft0", "parameters": {"fisher": "catalog", "size": 8}},
                         {"model": "org/ft1", "parameters": {"fisher": "catalog", "size": 8}}]}
    report = run_merge_job(recipe, tmp_path / "ubgm", catalog=catalog)
    explicit = {**recipe, "models": [
        {"model": str(vit_family[m]), "parameters": {"fisher": str(paths[m]), "size": 8}}
        for m in ("org/ft0", "org/ft1")], "base_model": str(vit_family["org/base"])}
    ref = merge_models(explicit, tmp_path / "ubgm-lib", progress=False)
    got, want = tensors_of(report.out_dir), tensors_of(ref.out_dir)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    ta = tensors_of(merge_models({**explicit, "merge_method": "task_arithmetic", "models": [
        {"model": str(vit_family[m]), "parameters": {"weight": 1.0}} for m in ("org/ft0",
                                                                              "org/ft1")]},
        tmp_path / "ta", progress=False).out_dir)
    name = "vit.encoder.layer.0.attention.attention.query.weight"
    assert not torch.equal(got[name], ta[name])  # the Fishers were used, not zeros


def test_missing_fisher_says_how_to_make_it(tmp_path, catalog):
    recipe = {"merge_method": "fisher", "parameters": {"fisher": "catalog"},
              "models": [{"model": "org/ft2"}, {"model": "org/ft1"}]}
    with pytest.raises(ModelNotFoundError) as err:
        run_merge_job(recipe, tmp_path / "f", catalog=catalog)
    assert "Fisher of model 'org/ft2'" in str(err.value) and "lineage fisher org/ft2" in str(
        err.value)


def test_compress_and_reconstruct(tmp_path, catalog, vit_family, capsys):
    bundle = tmp_path / "bundle"
    ids = ["org/ft0", "org/ft1", "org/ft2"]
    assert main(["compress", "org/base", *ids, "--out", str(bundle), "--lam", "0.3",
                 "--catalog", str(catalog.root)]) == 0
    out = capsys.readouterr().out
    lib = compress(str(vit_family["org/base"]), [str(vit_family[m]) for m in ids],
                   tmp_path / "lib", lam=0.3)
    assert f"ratio {lib.ratio:.3f}" in out
    rows = find_artifacts(catalog, kind=TALL)
    assert sorted((r.model_id, r.params["index"]) for r in rows) == [(m, i) for i, m in
                                                                     enumerate(ids)]
    assert main(["reconstruct", str(bundle), "org/ft1", "--out", str(tmp_path / "r"),
                 "--catalog", str(catalog.root)]) == 0
    want = reconstruct(lib.out_dir, 1, tmp_path / "r-lib")
    got, exp = tensors_of(tmp_path / "r"), tensors_of(want.out_dir)
    for name in exp:
        torch.testing.assert_close(got[name], exp[name], rtol=0, atol=0)
