"""The built `tiny` zoo checked against its ground truth, on the real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from lineage.zoo import evaluate, load_ground_truth
from lineage.zoo.arch import load_model

from .conftest import of_relation


def weights(root: Path, model_id: str) -> dict[str, torch.Tensor]:
    return load_file(root / model_id / "model.safetensors")


def front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_ground_truth_matches_the_folders(tiny_zoo, truth, nodes):
    root = tiny_zoo.root
    assert truth == load_ground_truth(root)
    assert truth["zoo"]["n_models"] == len(nodes) == 15
    on_disk = {f"{o.name}/{m.name}" for o in root.iterdir() if o.is_dir() for m in o.iterdir()}
    on_disk = {m for m in on_disk if not m.startswith(".")}
    assert on_disk == set(nodes)
    for n in nodes.values():
        assert n["files"] == sorted(p.name for p in (root / n["id"]).iterdir())
        expected = "model.safetensors" if n["has_weights"] else "adapter_model.safetensors"
        assert expected in n["files"] and "README.md" in n["files"]
    edges = {(e["parent"], e["child"]) for e in truth["edges"]}
    assert edges == {(p, n["id"]) for n in nodes.values() for p in n["parents"]}
    assert {t["root"] for t in truth["trees"]} == {n["id"] for n in of_relation(nodes, "root")}
    assert len({t["org"] for t in truth["trees"]}) == len(truth["trees"]) == 2


def test_roots_were_really_pretrained(tiny_zoo, nodes):
    for root in of_relation(nodes, "root"):
        result = root["result"]
        assert result["loss_last"] < 0.5 * result["loss_first"]
    vit_root = next(n for n in of_relation(nodes, "root") if n["arch"] == "vit")
    assert vit_root["result"]["accuracy"] > 0.9  # 10-way digits, chance is 0.1


def test_fine_tunes_changed_every_trained_tensor_and_learned(tiny_zoo, nodes):
    root = tiny_zoo.root
    children = of_relation(nodes, "finetune")
    for n in children:
        child, parent = weights(root, n["id"]), weights(root, n["parents"][0])
        assert child.keys() == parent.keys()
        assert all(not torch.equal(child[k], parent[k]) for k in child if child[k].ndim == 2)
        assert n["steps"] < nodes[n["parents"][0]]["steps"] or n["depth"] > 1
    improved = [n["result"]["accuracy"] > n["result"]["parent_accuracy"] for n in children]
    assert all(improved)


def test_cast_copies_have_the_stated_dtype_and_the_parents_values(tiny_zoo, nodes):
    root = tiny_zoo.root
    for n in of_relation(nodes, "quantized"):
        dtype = getattr(torch, n["dtype"])
        assert dtype in (torch.float16, torch.bfloat16)
        parent, child = weights(root, n["parents"][0]), weights(root, n["id"])
        for name, tensor in child.items():
            assert tensor.dtype == dtype
            assert torch.equal(tensor, parent[name].to(dtype))
        config = json.loads((root / n["id"] / "config.json").read_text())
        assert config["dtype"] == n["dtype"]


def test_reuploads_are_byte_identical(tiny_zoo, nodes):
    root = tiny_zoo.root
    for n in of_relation(nodes, "reupload"):
        assert n["id"].split("/")[0] != n["parents"][0].split("/")[0]  # someone else's account
        for name in ("model.safetensors", "config.json"):
            original = (root / n["parents"][0] / name).read_bytes()
            assert (root / n["id"] / name).read_bytes() == original


def numerical_rank(delta: torch.Tensor) -> int:
    s = torch.linalg.svdvals(delta.double())
    return int((s > 1e-3 * s[0]).sum()) if s[0] > 0 else 0


def test_lora_merged_weights_differ_by_a_delta_of_the_stated_rank(tiny_zoo, nodes):
    root = tiny_zoo.root
    for n in of_relation(nodes, "lora"):
        child, parent = weights(root, n["id"]), weights(root, n["parents"][0])
        changed = {k for k in child if not torch.equal(child[k], parent[k])}
        head = {k for k in changed if k.startswith("classifier.")}  # trained in full (ViT)
        low_rank = changed - head
        # 2 layers x 4 square attention projections (q, k, v, o), nothing else.
        assert len(low_rank) == 8, sorted(changed)
        for k in low_rank:
            assert child[k].shape[0] == child[k].shape[1]
            assert numerical_rank(child[k] - parent[k]) == n["rank"], k


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_adapter_folders_are_real_peft_adapters_of_their_twin(tiny_zoo, nodes):
    from peft import PeftModel

    root = tiny_zoo.root
    for n in of_relation(nodes, "adapter"):
        folder = root / n["id"]
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == n["parents"][0]
        assert config["r"] == n["rank"] and config["peft_type"] == "LORA"
        with safe_open(folder / "adapter_model.safetensors", "pt") as f:
            assert any("lora_A" in k for k in f.keys())
        base = load_model(root / n["parents"][0])
        merged = PeftModel.from_pretrained(base, folder).merge_and_unload()
        twin = load_model(root / n["twin"])
        assert nodes[n["twin"]]["twin"] == n["id"]
        ours, theirs = merged.state_dict(), twin.state_dict()
        assert ours.keys() == theirs.keys()
        for name, tensor in ours.items():
            torch.testing.assert_close(tensor, theirs[name], rtol=0, atol=1e-6, msg=name)


def test_merges_are_task_arithmetic_of_the_parents(tiny_zoo, nodes):
    root = tiny_zoo.root
    for n in of_relation(nodes, "merge"):
        assert len(n["parents"]) >= 2
        assert n["merge"]["method"] == "task_arithmetic"
        base = weights(root, n["merge"]["base"])
        parents = [weights(root, p) for p in n["parents"]]
        merged = weights(root, n["id"])
        for name, theta0 in base.items():
            tau = sum(p[name].double() - theta0.double() for p in parents)
            expected = (theta0.double() + n["merge"]["scale"] * tau).float()
            assert torch.equal(merged[name], expected), name
        assert set(n["result"]["task_accuracies"]) == {nodes[p]["task"] for p in n["parents"]}


def test_cards_state_what_the_ground_truth_says(tiny_zoo, nodes):
    lies = {"omitted": 0, "wrong": 0}
    for n in nodes.values():
        meta = front_matter(tiny_zoo.root / n["id"] / "README.md")
        card = n["card"]
        assert meta["license"] == card["license"]
        assert "lineage-zoo" in meta["tags"]
        if card["lie"] is None and n["parents"]:
            claimed = meta["base_model"]
            assert (claimed if isinstance(claimed, list) else [claimed]) == n["parents"]
            assert meta["base_model_relation"] == card["relation"]
        elif card["lie"] == "omitted" or not n["parents"]:
            assert "base_model" not in meta and "base_model_relation" not in meta
        else:
            assert meta["base_model"] not in n["parents"] and meta["base_model"] in nodes
        if card["lie"]:
            lies[card["lie"]] += 1
    assert lies == {"omitted": 2, "wrong": 2}  # round(0.15 * 14) each
    relations = {
        n["relation"]: n["card"]["relation"] for n in nodes.values() if not n["card"]["lie"]
    }
    assert relations["adapter"] == "adapter" and relations["quantized"] == "quantized"
    assert relations["lora"] == "finetune" and relations["root"] is None


def test_evaluate_reproduces_the_recorded_accuracies(tiny_zoo, nodes):
    for n in nodes.values():
        if n["relation"] in ("root", "finetune", "lora", "adapter", "merge"):
            acc = evaluate(tiny_zoo.root / n["id"])
            assert acc == pytest.approx(n["result"]["accuracy"], abs=1e-5), n["id"]
    merge = of_relation(nodes, "merge")[0]
    for task, acc in merge["result"]["task_accuracies"].items():
        assert evaluate(tiny_zoo.root / merge["id"], task) == pytest.approx(acc, abs=1e-5)
