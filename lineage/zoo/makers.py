"""One maker per relation: given a planned Node, produce its repo folder(s).

Each returns a record of what happened (accuracies, losses) for the ground truth. Parents
are read back from their written folders, so a resumed build needs nothing in memory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from lineage.zoo.arch import load_model, new_model, save_model, weights_file
from lineage.zoo.cards import render_card
from lineage.zoo.merge import merge_node_states
from lineage.zoo.plan import Node
from lineage.zoo.spec import TreeSpec
from lineage.zoo.tasks import get_task
from lineage.zoo.train import train, wrap_lora
from lineage.zoo.write import atomic_dir


def repo_dir(root: Path, model_id: str) -> Path:
    return root / model_id


def make_node(node: Node, tree: TreeSpec, root: Path, by_id: dict[str, Node]) -> dict[str, Any]:
    maker = {
        "root": _make_root,
        "finetune": _make_finetune,
        "lora": _make_lora,
        "merge": _make_merge,
        "quantized": _make_quantized,
        "reupload": _make_reupload,
    }[node.relation]
    return maker(node, tree, root, by_id)


def _save(model: torch.nn.Module, node: Node, root: Path) -> None:
    with atomic_dir(repo_dir(root, node.id)) as tmp:
        save_model(model, tmp)
        (tmp / "README.md").write_text(render_card(node))


def _scores(model: torch.nn.Module, node: Node, parent: torch.nn.Module | None) -> dict:
    task = get_task(node.task)
    record = {"accuracy": round(task.score(model), 6)}
    if parent is not None:
        record["parent_accuracy"] = round(task.score(parent), 6)
    return record


def _losses(losses: list[float]) -> dict:
    return {"loss_first": round(losses[0], 6), "loss_last": round(losses[-1], 6)} if losses else {}


def _make_root(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    model = new_model(node.arch, tree.size, node.init, node.seed)
    task = get_task(node.task)
    losses = train(model, task, node.steps, node.lr, tree.train.batch_size, node.seed)
    _save(model, node, root)
    return {**_scores(model, node, None), **_losses(losses)}


def _make_finetune(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    parent = load_model(repo_dir(root, node.parents[0]))
    model = load_model(repo_dir(root, node.parents[0]))
    losses = _train_child(model, node, tree)
    _save(model, node, root)
    return {**_scores(model, node, parent), **_losses(losses)}


def _train_child(model: torch.nn.Module, node: Node, tree: TreeSpec) -> list[float]:
    task = get_task(node.task)
    batch = tree.train.batch_size
    return train(
        model, task, node.steps, node.lr, batch, node.seed, node.optimizer, node.weight_decay
    )


def _make_lora(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    parent = load_model(repo_dir(root, node.parents[0]))
    peft_model = wrap_lora(
        load_model(repo_dir(root, node.parents[0])),
        node.arch,
        node.rank,
        node.seed,
        tree.lora_targets,
    )
    losses = _train_child(peft_model, node, tree)
    if node.twin:
        _save_adapter(peft_model, by_id[node.twin], root)
    merged = peft_model.merge_and_unload()
    _save(merged, node, root)
    return {**_scores(merged, node, parent), **_losses(losses)}


def _save_adapter(peft_model: Any, twin: Node, root: Path) -> None:
    # Real PEFT format; base_model_name_or_path is the parent's repo id, as on the Hub.
    peft_model.peft_config["default"].base_model_name_or_path = twin.parents[0]
    with atomic_dir(repo_dir(root, twin.id)) as tmp:
        # No embedding-layer check: it would look the base id up on the (unreachable) Hub.
        peft_model.save_pretrained(tmp, save_embedding_layers=False)
        _sort_target_modules(tmp / "adapter_config.json")
        (tmp / "README.md").write_text(render_card(twin))


def _sort_target_modules(path: Path) -> None:
    # PEFT writes target_modules from a set, whose order varies with PYTHONHASHSEED;
    # sorted, the adapter folder is byte-identical across runs.
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


def _make_merge(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    from safetensors.torch import load_file, save_file

    weights = weights_file(node.arch)
    models = [load_file(repo_dir(root, p) / weights) for p in node.parents]
    base = load_file(repo_dir(root, node.merge_base) / weights) if node.merge_base else None
    merged = merge_node_states(node, base, models)
    # Config, scheduler and index files come from the first parent (all share them).
    with atomic_dir(repo_dir(root, node.id)) as tmp:
        _copy_repo(repo_dir(root, node.parents[0]), tmp, skip=weights)
        (tmp / weights).parent.mkdir(parents=True, exist_ok=True)
        save_file(merged, tmp / weights, metadata={"format": "pt"})
        (tmp / "README.md").write_text(render_card(node))
    model = load_model(repo_dir(root, node.id))
    tasks = {get_task(by_id[p].task).name for p in node.parents}
    return {
        "accuracy": round(get_task(node.task).score(model), 6),
        "task_accuracies": {t: round(get_task(t).score(model), 6) for t in sorted(tasks)},
    }


def _copy_repo(source: Path, dest: Path, skip: str | None = None) -> None:
    """Every file of a repo but its card (and `skip`), byte for byte, subfolders kept."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if path.is_file() and rel not in ("README.md", skip):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)


def _make_quantized(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    dtype = getattr(torch, node.dtype)
    model = load_model(repo_dir(root, node.parents[0]), dtype=dtype)
    _save(model, node, root)
    return {"accuracy": round(get_task(node.task).score(model.float()), 6)}


def _make_reupload(node: Node, tree: TreeSpec, root: Path, by_id: dict) -> dict:
    with atomic_dir(repo_dir(root, node.id)) as tmp:
        _copy_repo(repo_dir(root, node.parents[0]), tmp)  # byte-identical, as re-uploads are
        (tmp / "README.md").write_text(render_card(node))
    return _scores(load_model(repo_dir(root, node.id)), node, None)
