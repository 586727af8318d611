"""Expand a ZooSpec into an ordered list of planned models (pure: no torch, no files).

Every random choice (tasks, ranks, merge partners, cast targets, card lies) is drawn here
from the spec seed, so the plan, and thus the ground truth, is fixed before training.
Models come in build order: a parent always precedes its children.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

from lineage.zoo.spec import NO_ADAPTER_ARCHS, MergeSpec, TreeSpec, Vary, ZooSpec
from lineage.zoo.tasks import FAMILY_OF_ARCH, ROOT_TASK, task_pool

MIRROR_ORG = "zoo-mirror"  # re-uploads appear under someone else's account
LICENSES = ("apache-2.0", "mit", "cc-by-4.0")


@dataclass
class Node:
    id: str  # "org/name", the repo id
    tree: int
    arch: str
    init: str
    relation: str  # root | finetune | lora | adapter | merge | quantized | reupload
    parents: list[str]
    depth: int
    task: str
    seed: int
    steps: int = 0
    lr: float = 0.0
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    rank: int | None = None
    dtype: str = "float32"
    merge_method: str | None = None
    merge_base: str | None = None
    merge_scale: float | None = None
    merge_density: float | None = None
    merge_t: float | None = None
    twin: str | None = None  # a LoRA's merged repo <-> its adapter-only repo
    split: str | None = None
    license: str = "apache-2.0"
    card_base: list[str] = field(default_factory=list)  # what the card will claim
    card_lie: str | None = None  # None | "omitted" | "wrong"

    @property
    def has_weights(self) -> bool:
        """True if the repo holds full weights (model.safetensors), not only an adapter."""
        return self.relation != "adapter"


def node_seed(spec_seed: int, node_id: str) -> int:
    """Per-model seed: independent of build order, so a resumed build trains identically."""
    digest = hashlib.sha256(f"{spec_seed}/{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def plan_zoo(spec: ZooSpec) -> list[Node]:
    rng = random.Random(spec.seed)
    nodes: list[Node] = []
    tree_index = 0
    for tree in spec.trees:
        for _ in range(tree.count):
            nodes += _plan_tree(spec, tree, tree_index, rng)
            tree_index += 1
    _assign_cards(spec, nodes, rng)
    return nodes


def _plan_tree(spec: ZooSpec, tree: TreeSpec, index: int, rng: random.Random) -> list[Node]:
    org = f"zoo-{tree.arch}-{index}"
    family = FAMILY_OF_ARCH[tree.arch]
    pool = list(tree.tasks or task_pool(tree.arch))
    rng.shuffle(pool)
    counter = {"task": 0, "rank": 0, "name": 0}

    def make(relation: str, parents: list[str], depth: int, name: str, **kw) -> Node:
        node_id = f"{org}/{name}"
        return Node(
            id=node_id,
            tree=index,
            arch=tree.arch,
            init=tree.init,
            relation=relation,
            parents=parents,
            depth=depth,
            seed=node_seed(spec.seed, node_id),
            split=tree.split,
            license=rng.choice(LICENSES),
            **kw,
        )

    root = make(
        "root",
        [],
        0,
        "root",
        task=tree.root_task or ROOT_TASK[family],
        steps=tree.train.root_steps,
        lr=tree.train.root_lr,
    )
    nodes, level = [root], [root]
    for depth, width in enumerate(tree.branching, start=1):
        cycle = tree.relation[depth - 1]
        next_level = []
        for edge, parent in enumerate(p for p in level for _ in range(width)):
            relation = cycle[edge % len(cycle)]
            counter["name"] += 1
            child = make(
                relation,
                [parent.id],
                depth,
                f"model-{counter['name']}",
                task=pool[counter["task"] % len(pool)],
                steps=tree.train.child_steps,
                lr=tree.train.lora_lr if relation == "lora" else tree.train.child_lr,
                optimizer=tree.train.optimizer,
                weight_decay=tree.train.weight_decay,
            )
            _draw_hyperparameters(child, tree.vary, rng)
            counter["task"] += 1
            if relation == "lora":
                rank = tree.lora_ranks[counter["rank"] % len(tree.lora_ranks)]
                # A rank above the smallest targeted matrix dimension (the hidden size:
                # every target maps hidden to >= hidden) is not a low-rank update.
                child.rank = min(rank, tree.size.hidden)
                counter["rank"] += 1
            nodes.append(child)
            next_level.append(child)
            if relation == "lora" and tree.adapters and tree.arch not in NO_ADAPTER_ARCHS:
                nodes.append(_adapter_twin(child, make))
        level = next_level
    nodes += _plan_extras(tree, nodes, make, rng)
    return nodes


def _draw_hyperparameters(node: Node, vary: Vary, rng: random.Random) -> None:
    """Per-node training choices from the tree's ranges (nothing drawn for empty ones, so
    specs without `vary` plan exactly as before)."""
    if vary.lr:
        node.lr = _log_uniform(rng, *vary.lr)
    if vary.steps:
        node.steps = max(1, round(_log_uniform(rng, *vary.steps)))
    if vary.optimizers:
        node.optimizer = rng.choice(vary.optimizers)
    if vary.weight_decay:
        node.weight_decay = rng.uniform(*vary.weight_decay)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _adapter_twin(merged: Node, make) -> Node:
    twin = make(
        "adapter",
        list(merged.parents),
        merged.depth,
        merged.id.split("/")[1] + "-adapter",
        task=merged.task,
        steps=merged.steps,
        lr=merged.lr,
        optimizer=merged.optimizer,
        weight_decay=merged.weight_decay,
        rank=merged.rank,
        twin=merged.id,
    )
    twin.seed = merged.seed  # the same training run, published two ways
    merged.twin = twin.id
    return twin


def _plan_extras(tree: TreeSpec, nodes: list[Node], make, rng: random.Random) -> list[Node]:
    extras: list[Node] = []
    full = [n for n in nodes if n.has_weights]
    for k, merge in enumerate(tree.merges, start=1):
        extras.append(_plan_merge(merge, k, full, extras, make, rng))
    for dtype in tree.casts:
        parent = rng.choice(full)
        torch_dtype = {"fp16": "float16", "bf16": "bfloat16"}[dtype]
        name = f"{parent.id.split('/')[1]}-{dtype}"
        extras.append(
            make(
                "quantized",
                [parent.id],
                parent.depth + 1,
                name,
                task=parent.task,
                dtype=torch_dtype,
            )
        )
    for _ in range(tree.reuploads):
        parent = rng.choice(full)
        node = make("reupload", [parent.id], parent.depth + 1, "x", task=parent.task)
        node.id = f"{MIRROR_ORG}/{parent.id.replace('/', '-')}"
        extras.append(node)
    return extras


# Methods that combine the parents alone; the others add task vectors to a base.
BASELESS_MERGES = ("linear", "slerp")


def _plan_merge(
    merge: MergeSpec, k: int, full: list[Node], merges: list[Node], make, rng: random.Random
) -> Node:
    if merge.sources == "merges":
        parents, base = _merge_inputs(merge, k, merges, full[0], rng)
    else:
        parents, base = _sibling_inputs(merge, k, full, rng)
    uses_base = merge.method not in BASELESS_MERGES
    return make(
        "merge",
        [p.id for p in parents],
        max(p.depth for p in parents) + 1,
        f"merge-{k}",
        task=parents[0].task,
        merge_method=merge.method,
        merge_base=base if uses_base else None,
        merge_scale=merge.scale if merge.method not in ("linear", "model_stock", "slerp")
        else None,
        merge_density=merge.density if merge.method in ("ties", "dare_ties", "dare_linear")
        else None,
        merge_t=merge.t if merge.method == "slerp" else None,
    )


def _sibling_inputs(merge: MergeSpec, k: int, full: list[Node], rng: random.Random):
    # Merge siblings (fine-tunes of one base), the usual task-vector setting.
    groups: dict[str, list[Node]] = {}
    for n in full:
        if n.relation in ("finetune", "lora"):
            groups.setdefault(n.parents[0], []).append(n)
    bases = sorted(b for b, kids in groups.items() if len(kids) >= merge.of)
    if not bases:
        _no_inputs(merge, k, "no model in the tree has that many children",
                   "Raise the tree's branching or lower `of`")
    base = rng.choice(bases)
    return sorted(rng.sample(groups[base], merge.of), key=lambda n: n.id), base


def _merge_inputs(merge: MergeSpec, k: int, merges: list[Node], root: Node,
                  rng: random.Random):
    # A merge of merges: their shared base when they have one, else the tree's root.
    if len(merges) < merge.of:
        _no_inputs(merge, k, f"the tree has only {len(merges)} earlier merge(s)",
                   "List merges of siblings before a merge with sources: merges")
    parents = sorted(rng.sample(merges, merge.of), key=lambda n: n.id)
    bases = {p.merge_base for p in parents}
    base = bases.pop() if len(bases) == 1 and None not in bases else root.id
    return parents, base


def _no_inputs(merge: MergeSpec, k: int, why: str, fix: str):
    from lineage.errors import SpecError

    raise SpecError(f"merges[{k - 1}] of {merge.of} ({merge.sources})", why, fix)


def _assign_cards(spec: ZooSpec, nodes: list[Node], rng: random.Random) -> None:
    """What each card claims: the truth, nothing (omitted) or a wrong base (the Hub's reality)."""
    for n in nodes:
        n.card_base = list(n.parents)
    candidates = [n for n in nodes if n.parents]
    rng.shuffle(candidates)
    n_omit = round(spec.cards.omit_base * len(candidates))
    n_wrong = round(spec.cards.wrong_base * len(candidates))
    by_id = {n.id: n for n in nodes}
    for n in candidates[:n_omit]:
        n.card_base, n.card_lie = [], "omitted"
    for n in candidates[n_omit : n_omit + n_wrong]:
        n.card_base, n.card_lie = [_wrong_base(n, nodes, by_id, rng)], "wrong"


def _wrong_base(node: Node, nodes: list[Node], by_id: dict[str, Node], rng: random.Random) -> str:
    # The commonest lie names the grandparent (the "original" base); else another model
    # of the same tree (a plausible mix-up), never the node itself or its twin.
    grand = [g for p in node.parents for g in by_id[p].parents if g not in node.parents]
    if grand:
        return grand[0]
    excluded = {node.id, node.twin, *node.parents}
    others = [n.id for n in nodes if n.id not in excluded and n.tree == node.tree]
    return rng.choice(others or [n.id for n in nodes if n.id not in excluded])
