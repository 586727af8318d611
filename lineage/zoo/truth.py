"""ground_truth.json: the true Model Graph of a built zoo, machine-readable.

Schema (version 2; lineage/zoo/README.md documents every field):
{
  "schema_version": 2,
  "zoo": {"name", "seed", "spec_hash", "format_version", "n_models", "n_trees"},
  "spec": {...the normalized spec...},
  "trees": [{"tree", "org", "arch", "init", "root", "split", "size": {...}, "lora_targets"}],
  "nodes": [{"id", "tree", "arch", "init", "relation", "parents", "depth", "task", "seed",
             "steps", "lr", "optimizer", "weight_decay", "rank", "dtype", "split", "twin",
             "has_weights", "files",
             "merge": null | {"method", "base", "scale", "density", "t"},
             "card": {"base_model": [...], "relation": str | null,
                      "lie": null | "omitted" | "wrong", "license"},
             "result": {"accuracy", "parent_accuracy", "loss_first", "loss_last", ...}}],
  "edges": [{"parent", "child", "relation", "rank", "tree"}]
}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lineage.errors import ModelNotFoundError, SpecError
from lineage.zoo.cards import card_relation
from lineage.zoo.plan import Node
from lineage.zoo.spec import ZOO_FORMAT_VERSION, ZooSpec

SCHEMA_VERSION = 2
# Version 1 files (zoo format <= 3) lack only fields version 2 added; they still read.
READABLE_SCHEMAS = (1, 2)
FILENAME = "ground_truth.json"
TRAINED = ("root", "finetune", "lora", "adapter")  # relations whose weights were trained


def node_entry(node: Node, root: Path, result: dict[str, Any]) -> dict[str, Any]:
    folder = root / node.id
    trained = node.relation in TRAINED
    merge = None
    if node.relation == "merge":
        merge = {
            "method": node.merge_method,
            "base": node.merge_base,
            "scale": node.merge_scale,
            "density": node.merge_density,
            "t": node.merge_t,
        }
    return {
        "id": node.id,
        "tree": node.tree,
        "arch": node.arch,
        "init": node.init,
        "relation": node.relation,
        "parents": node.parents,
        "depth": node.depth,
        "task": node.task,
        "seed": node.seed,
        "steps": node.steps,
        "lr": node.lr,
        "optimizer": node.optimizer if trained else None,
        "weight_decay": node.weight_decay if trained else None,
        "rank": node.rank,
        "dtype": node.dtype,
        "split": node.split,
        "twin": node.twin,
        "has_weights": node.has_weights,
        "files": sorted(p.name for p in folder.iterdir()) if folder.is_dir() else [],
        "merge": merge,
        "card": {
            "base_model": node.card_base,
            "relation": card_relation(node),
            "lie": node.card_lie,
            "license": node.license,
        },
        "result": result,
    }


def assemble(spec: ZooSpec, nodes: list[Node], root: Path, results: dict[str, dict]) -> dict:
    entries = [node_entry(n, root, results.get(n.id, {})) for n in nodes]
    roots = [n for n in nodes if n.relation == "root"]
    trees = [
        {
            "tree": r.tree,
            "org": r.id.split("/")[0],
            "arch": r.arch,
            "init": r.init,
            "root": r.id,
            "split": r.split,
            "size": _tree_field(spec, r.tree, "size"),
            "lora_targets": _tree_field(spec, r.tree, "lora_targets"),
        }
        for r in roots
    ]
    edges = [
        {"parent": p, "child": n.id, "relation": n.relation, "rank": n.rank, "tree": n.tree}
        for n in nodes
        for p in n.parents
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "zoo": {
            "name": spec.name,
            "seed": spec.seed,
            "spec_hash": spec.hash(),
            "format_version": ZOO_FORMAT_VERSION,
            "n_models": len(nodes),
            "n_trees": len(roots),
        },
        "spec": spec.to_dict(),
        "trees": trees,
        "nodes": entries,
        "edges": edges,
    }


def _tree_field(spec: ZooSpec, index: int, key: str) -> object:
    """A field of the TreeSpec that built tree `index` (a spec tree may build `count`)."""
    seen = 0
    for tree in spec.to_dict()["trees"]:
        seen += tree["count"]
        if index < seen:
            return tree[key]
    return None


def load_ground_truth(zoo_dir: str | Path) -> dict[str, Any]:
    """The ground truth of a built zoo (the parsed ground_truth.json)."""
    path = Path(zoo_dir) / FILENAME
    if not path.is_file():
        raise ModelNotFoundError(
            str(zoo_dir), f"has no {FILENAME}", "Build it first: lineage zoo build PRESET OUT"
        )
    data = json.loads(path.read_text())
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise SpecError(
            str(path),
            f"has schema_version {data.get('schema_version')}, expected {SCHEMA_VERSION}",
            "Rebuild the zoo with this version of lineage",
        )
    return data


def find_zoo_root(model_dir: Path) -> Path | None:
    """The zoo folder holding `model_dir` (OUT/<org>/<name> -> OUT), if any."""
    for candidate in (model_dir, *model_dir.resolve().parents[:3]):
        if (candidate / FILENAME).is_file():
            return candidate
    return None
