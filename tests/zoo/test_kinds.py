"""The sweep's new kinds, built for real: BERT and a diffusers UNet, linear / SLERP /
DARE / model-stock merges and a merge of merges, LoRA on attention + MLP, SGD, casts and
re-uploads of a pipeline; each checked against its ground truth and recomputed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lineage.zoo import build_zoo, evaluate
from lineage.zoo.unet import WEIGHTS

KINDS = {
    "name": "kinds",
    "seed": 3,
    "train": {"root_steps": 30, "child_steps": 3, "batch_size": 16},
    "size": {"hidden": 16, "intermediate": 32, "layers": 2},
    "vary": {"lr": [1e-4, 1e-3], "steps": [3, 8], "optimizers": ["adamw", "sgd"],
             "weight_decay": [0, 0.1]},
    "trees": [
        {"arch": "bert", "branching": [3], "relation": [["finetune", "lora", "finetune"]],
         "lora_targets": "attention+mlp", "lora_ranks": [64], "casts": ["bf16"],
         "merges": [{"of": 2, "method": "linear"},
                    {"of": 2, "method": "slerp", "t": 0.3},
                    {"of": 2, "method": "dare_ties", "density": 0.5, "scale": 1.0},
                    {"of": 2, "method": "model_stock", "sources": "merges"}]},
        {"arch": "unet", "init": "torch", "branching": [2], "relation": [["finetune", "lora"]],
         "merges": [{"of": 2, "method": "dare_linear", "density": 0.5}],
         "casts": ["fp16"], "reuploads": 1},
    ],
}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory):
    zoo = build_zoo(KINDS, tmp_path_factory.mktemp("kinds") / "zoo", use_cache=False,
                    progress=False)
    return zoo.root, {n["id"]: n for n in zoo.ground_truth["nodes"]}, zoo.ground_truth


def state(root: Path, node: dict) -> dict[str, torch.Tensor]:
    name = WEIGHTS if node["arch"] == "unet" else "model.safetensors"
    return load_file(root / node["id"] / name)


def test_ground_truth_carries_every_new_relation(kinds):
    root, nodes, truth = kinds
    merges = {n["merge"]["method"]: n for n in nodes.values() if n["relation"] == "merge"}
    assert set(merges) == {"linear", "slerp", "dare_ties", "model_stock", "dare_linear"}
    stock = merges["model_stock"]  # the merge of merges
    assert sorted(stock["parents"]) == sorted(
        m["id"] for m in (merges["slerp"], merges["dare_ties"]))
    assert stock["merge"]["base"] == "zoo-bert-0/root"
    assert merges["linear"]["merge"]["base"] is None and merges["slerp"]["merge"]["t"] == 0.3
    edges = {(e["parent"], e["child"]): e["relation"] for e in truth["edges"]}
    for m in merges.values():
        assert all(edges[(p, m["id"])] == "merge" for p in m["parents"])
    casts = [n for n in nodes.values() if n["relation"] == "quantized"]
    assert {c["dtype"] for c in casts} == {"bfloat16", "float16"}
    assert all(edges[(c["parents"][0], c["id"])] == "quantized" for c in casts)
    reup = next(n for n in nodes.values() if n["relation"] == "reupload")
    assert edges[(reup["parents"][0], reup["id"])] == "reupload"
    assert truth["schema_version"] == 2
    assert not any(n["relation"] == "adapter" and n["arch"] == "unet" for n in nodes.values())


def test_linear_slerp_and_model_stock_weights_by_hand(kinds):
    root, nodes, _ = kinds
    merges = {n["merge"]["method"]: n for n in nodes.values() if n["relation"] == "merge"}
    name = "bert.encoder.layer.0.attention.self.query.weight"

    lin = merges["linear"]
    a, b = (state(root, nodes[p])[name] for p in lin["parents"])
    assert torch.allclose(state(root, lin)[name], (a + b) / 2, atol=1e-7)

    sl = merges["slerp"]
    v0, v1 = (state(root, nodes[p])[name].double() for p in sl["parents"])
    cos = float((v0 / v0.norm() * v1 / v1.norm()).sum())
    theta = math.acos(cos)
    expect = (math.sin(0.7 * theta) * v0 + math.sin(0.3 * theta) * v1) / math.sin(theta)
    assert torch.allclose(state(root, sl)[name].double(), expect, atol=1e-6)

    stock = merges["model_stock"]
    base = state(root, nodes[stock["merge"]["base"]])[name].double()
    w1, w2 = (state(root, nodes[p])[name].double() for p in stock["parents"])
    d1, d2 = (w1 - base).flatten(), (w2 - base).flatten()
    c = float(d1 @ d2 / max(float(d1.norm() * d2.norm()), 1e-6))  # mergekit's floor
    t = 2 * c / (1 + c)
    expect = t * (w1 + w2) / 2 + (1 - t) * base
    assert torch.allclose(state(root, stock)[name].double(), expect, atol=1e-6)


def test_dare_drops_about_density_of_each_task_vector(kinds):
    root, nodes, _ = kinds
    dare = next(n for n in nodes.values() if (n["merge"] or {}).get("method") == "dare_linear")
    base = state(root, nodes[dare["merge"]["base"]])
    merged = state(root, dare)
    name = "mid_block.attentions.0.to_q.weight"
    # Two task vectors each kept with p = 0.5: an entry stays at the base with p = 0.25.
    unchanged = float((merged[name] == base[name]).double().mean())
    assert 0.15 < unchanged < 0.35


def test_lora_on_attention_and_mlp_is_low_rank_everywhere(kinds):
    root, nodes, _ = kinds
    lora = next(n for n in nodes.values() if n["relation"] == "lora" and n["arch"] == "bert")
    assert lora["rank"] == 16  # 64 asked, capped by the hidden size
    config = json.loads((root / lora["twin"] / "adapter_config.json").read_text())
    assert {"intermediate.dense", "output.dense", "query"} <= set(config["target_modules"])
    child, parent = state(root, lora), state(root, nodes[lora["parents"][0]])
    for name in ("bert.encoder.layer.1.intermediate.dense.weight",
                 "bert.encoder.layer.1.attention.self.value.weight"):
        delta = (child[name] - parent[name]).double()
        assert delta.abs().max() > 0
        assert torch.linalg.matrix_rank(delta, atol=1e-6) <= 16
    # The LayerNorms are not LoRA targets: untouched.
    name = "bert.encoder.layer.1.output.LayerNorm.weight"
    assert torch.equal(child[name], parent[name])


def test_sgd_children_and_hyperparameters_are_recorded(kinds):
    root, nodes, _ = kinds
    children = [n for n in nodes.values() if n["relation"] in ("finetune", "lora")]
    assert {n["optimizer"] for n in children} == {"adamw", "sgd"}
    for n in children:
        assert 1e-4 <= n["lr"] <= 1e-3 and 3 <= n["steps"] <= 8
        assert 0 <= n["weight_decay"] <= 0.1
        changed = [not torch.equal(state(root, n)[k], v)
                   for k, v in state(root, nodes[n["parents"][0]]).items()]
        assert any(changed)
    merge = next(n for n in nodes.values() if n["relation"] == "merge")
    assert merge["optimizer"] is None and merge["weight_decay"] is None


def test_unet_repos_are_diffusers_pipelines(kinds):
    from diffusers import DDPMPipeline

    root, nodes, _ = kinds
    unet_root = nodes["zoo-unet-1/root"]
    assert unet_root["result"]["loss_last"] < unet_root["result"]["loss_first"]
    pipe = DDPMPipeline.from_pretrained(root / "zoo-unet-1/root")
    assert type(pipe.unet).__name__ == "UNet2DModel"
    assert unet_root["files"] == ["README.md", "model_index.json", "scheduler", "unet"]
    score = evaluate(root / "zoo-unet-1/root")
    assert score == pytest.approx(unet_root["result"]["accuracy"], abs=1e-5) and score > 0
    reup = next(n for n in nodes.values() if n["relation"] == "reupload")
    assert (root / reup["id"] / WEIGHTS).read_bytes() == (
        root / reup["parents"][0] / WEIGHTS).read_bytes()
    cast = next(n for n in nodes.values() if n["relation"] == "quantized" and n["arch"] == "unet")
    assert {t.dtype for t in state(root, cast).values()} == {torch.float16}
    card = (root / cast["id"] / "README.md").read_text()
    assert "library_name: diffusers" in card and "base_model_relation: quantized" in card


def test_bert_fills_masks_and_scores_like_its_record(kinds):
    root, nodes, _ = kinds
    bert = nodes["zoo-bert-0/root"]
    assert bert["result"]["loss_last"] < bert["result"]["loss_first"]
    assert evaluate(root / bert["id"]) == pytest.approx(bert["result"]["accuracy"], abs=1e-5)
    config = json.loads((root / bert["id"] / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 45
