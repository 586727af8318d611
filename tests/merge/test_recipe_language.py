"""mergekit's recipe language end to end: slices, gradients, filters, tokenizer_source.

Models are tiny llama-shaped state dicts saved as real safetensors folders; expected
values are written with numpy from mergekit's documented semantics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lineage.errors import SpecError
from lineage.merge import Recipe, merge_models
from tests.merge._helpers import load_all

N_LAYERS = 4


def llama_like(folder, seed: int, n_layers: int = N_LAYERS, vocab: dict | None = None):
    g = torch.Generator().manual_seed(seed)
    state = {"model.embed_tokens.weight": torch.randn(10, 6, generator=g),
             "model.norm.weight": torch.randn(6, generator=g),
             "lm_head.weight": torch.randn(10, 6, generator=g)}
    for i in range(n_layers):
        state[f"model.layers.{i}.self_attn.q_proj.weight"] = torch.randn(6, 6, generator=g)
        state[f"model.layers.{i}.mlp.up_proj.weight"] = torch.randn(8, 6, generator=g)
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "llama", "num_hidden_layers": n_layers, "hidden_size": 6}))
    tok = {"model": {"type": "BPE", "vocab": vocab or {"a": 0, "b": 1}, "merges": []},
           "added_tokens": []}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    return folder


@pytest.fixture
def pair(tmp_path):
    return llama_like(tmp_path / "a", 1), llama_like(tmp_path / "b", 2)


def np_(t):
    return t.double().numpy()


def test_passthrough_frankenmerge_stacks_layer_ranges(pair, tmp_path):
    a, b = pair
    recipe = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(a), "layer_range": [0, 2]}]},
        {"sources": [{"model": str(b), "layer_range": [1, 4]}]}]}
    out = merge_models(recipe, tmp_path / "franken", progress=False).out_dir
    got, sa, sb = load_all(out), load_all(a), load_all(b)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 5
    where = {0: (sa, 0), 1: (sa, 1), 2: (sb, 1), 3: (sb, 2), 4: (sb, 3)}
    for out_layer, (src, layer) in where.items():
        for part in ("self_attn.q_proj.weight", "mlp.up_proj.weight"):
            assert torch.equal(got[f"model.layers.{out_layer}.{part}"],
                               src[f"model.layers.{layer}.{part}"])
    # embeddings from the first slice's model, final norm and lm_head from the last's
    assert torch.equal(got["model.embed_tokens.weight"], sa["model.embed_tokens.weight"])
    assert torch.equal(got["lm_head.weight"], sb["lm_head.weight"])
    assert torch.equal(got["model.norm.weight"], sb["model.norm.weight"])
    assert len(got) == 3 + 2 * 5


def _lerp_weight(anchors, t):
    """np.interp over evenly spaced anchors == mergekit's piecewise-linear gradient."""
    return float(np.interp(t, np.linspace(0, 1, len(anchors)), anchors))


def test_gradient_and_filters_vary_the_weight_by_layer_and_tensor(pair, tmp_path):
    a, b = pair
    recipe = {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": 1.0}},
        {"model": str(b), "parameters": {"weight": [
            {"filter": "self_attn", "value": [0.0, 1.0, 3.0]},
            {"filter": "mlp", "value": [2.0, 0.0]},
            {"value": 0.5}]}}]}
    got = load_all(merge_models(recipe, tmp_path / "grad", progress=False).out_dir)
    sa, sb = load_all(a), load_all(b)
    for name, x in got.items():
        t = 0.0  # outside the layers: mergekit 0.1.5 reads gradients at t = 0
        if ".layers." in name:
            t = int(name.split(".")[2]) / (N_LAYERS - 1)
        wb = (_lerp_weight([0.0, 1.0, 3.0], t) if "self_attn" in name
              else _lerp_weight([2.0, 0.0], t) if "mlp" in name else 0.5)
        want = (np_(sa[name]) + wb * np_(sb[name])) / (1.0 + wb)
        np.testing.assert_allclose(np_(x), want, rtol=1e-6, atol=1e-6, err_msg=name)


def _slerp(t, v0, v1):
    a, b = v0.reshape(-1), v1.reshape(-1)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    if abs(cos) > 0.9995:
        return (1 - t) * v0 + t * v1
    th = np.arccos(cos)
    return (np.sin((1 - t) * th) * v0 + np.sin(t * th) * v1) / np.sin(th)


def test_mergekit_slerp_example_with_slices_and_filtered_gradients(pair, tmp_path):
    """mergekit's README SLERP example: slices over the same layer range, t by filter."""
    a, b = pair
    t_attn, t_mlp = [0, 0.5, 0.3, 0.7, 1], [1, 0.5, 0.7, 0.3, 0]
    recipe = {"merge_method": "slerp", "base_model": str(a), "dtype": "float32",
              "slices": [{"sources": [{"model": str(a), "layer_range": [0, N_LAYERS]},
                                      {"model": str(b), "layer_range": [0, N_LAYERS]}]}],
              "parameters": {"t": [{"filter": "self_attn", "value": t_attn},
                                   {"filter": "mlp", "value": t_mlp}, {"value": 0.5}]}}
    got = load_all(merge_models(recipe, tmp_path / "slerp", progress=False).out_dir)
    sa, sb = load_all(a), load_all(b)
    for name, x in got.items():
        pos = int(name.split(".")[2]) / (N_LAYERS - 1) if ".layers." in name else 0.0
        t = (_lerp_weight(t_attn, pos) if "self_attn" in name
             else _lerp_weight(t_mlp, pos) if "mlp" in name else 0.5)
        np.testing.assert_allclose(np_(x), _slerp(t, np_(sa[name]), np_(sb[name])),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_slices_must_have_equal_lengths_and_models_xor_slices():
    with pytest.raises(SpecError, match="different numbers of layers"):
        Recipe.from_dict({"merge_method": "linear", "slices": [{"sources": [
            {"model": "a", "layer_range": [0, 2]}, {"model": "b", "layer_range": [0, 3]}]}]})
    with pytest.raises(SpecError, match="mutually exclusive"):
        Recipe.from_dict({"merge_method": "passthrough", "models": ["a"], "slices": [
            {"sources": [{"model": "a", "layer_range": [0, 2]}]}]})


def test_slice_without_the_base_is_refused():
    with pytest.raises(SpecError, match="does not list base_model b among its sources"):
        Recipe.from_dict({"merge_method": "ties", "base_model": "b", "parameters":
                          {"weight": 1.0}, "slices": [{"sources": [
                              {"model": "m", "layer_range": [0, 2]},
                              {"model": "n", "layer_range": [0, 2]}]}]})


def test_tokenizer_source_base_same_vocab_model_and_refusals(tmp_path):
    a = llama_like(tmp_path / "a", 1)
    b = llama_like(tmp_path / "b", 2)
    other = llama_like(tmp_path / "other", 3, vocab={"x": 0, "y": 1})

    def run(tok, name):
        recipe = {"merge_method": "linear", "tokenizer_source": tok,
                  "models": [{"model": str(a), "parameters": {"weight": 1.0}},
                             {"model": str(b), "parameters": {"weight": 1.0}}]}
        return merge_models(recipe, tmp_path / name, progress=False).out_dir

    assert (run("base", "t1") / "tokenizer.json").is_file()
    assert (run(str(b), "t2") / "tokenizer.json").read_text() == (b / "tokenizer.json"
                                                                    ).read_text()
    with pytest.raises(SpecError, match="different vocabulary"):
        run(str(other), "t3")
    with pytest.raises(SpecError, match="union.*mergekit option lineage does not support"):
        run("union", "t4")
    assert not (tmp_path / "t3").exists() and not (tmp_path / "t4").exists()


def test_unsupported_mergekit_method_is_refused_by_name():
    with pytest.raises(SpecError, match="'lrp': is a mergekit method lineage does not "
                                        "support: needs activations"):
        Recipe.from_dict({"merge_method": "lrp", "models": ["a"]})
