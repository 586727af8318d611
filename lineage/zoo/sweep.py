"""The zoo sweep: zoo specs drawn at random over wide ranges, each fitted to a build budget.

A draw is named by (sweep seed S, index i); its own seed is a hash of both, so draw i is
the same whatever N is. Everything is drawn per tree (architecture, init, size, depth,
fan-out per level, relation mix, LoRA ranks and targets, merges, casts, re-uploads, root
pretraining) or per node (learning rate, steps, optimizer, weight decay: the spec's
`vary` ranges, drawn in lineage.zoo.plan). Seeds >= HOLDOUT_SEED are held out: nobody
develops recovery on them; they are only for checking.

The cost model (`estimate_seconds`) predicts a build's single-thread CPU time from the
plan: per trained model, steps x seconds-per-step (by architecture, scaled by width,
depth and batch) plus a fixed per-model cost (load, save, score). A draw over budget
cheapens its dearest tree, one step at a time: the top of its children's step range
drops by 20 % down to `min_steps_top` (log-uniform draws keep their quantile, so every
step count shrinks and none falls below the range's low end), then its deepest level
loses a child per node, then its root pretraining shortens, then the tree goes.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

from lineage.zoo.plan import Node, plan_zoo
from lineage.zoo.spec import (
    ARCHS,
    CAST_DTYPES,
    INITS,
    LORA_TARGET_SETS,
    MERGE_METHODS,
    OPTIMIZERS,
    parse_spec,
)

HOLDOUT_SEED = 1000  # sweep seeds from here on are held-out draws
LORA_RANKS = (1, 2, 4, 8, 16, 32, 64)

# CPU seconds per training step, one thread, batch 32, hidden 32, 2 layers, and per
# model (load the parent, save, score child and parent; a cast, merge or re-upload
# loads, writes and scores once), measured on the shared 2-core development machine.
# Noisy; only used to size draws.
STEP_SECONDS = {"vit": 0.013, "llama": 0.017, "gpt2": 0.016, "bert": 0.015, "unet": 0.06}
MODEL_SECONDS = {"trained": 0.5, "copy": 0.35}
UNET_MODEL_FACTOR = 1.7  # a pipeline folder, conv weights: loads and saves are slower


@dataclass(frozen=True)
class SweepShape:
    """The ranges draws come from. Defaults are issue 10's; `small()` is for CI."""

    archs: tuple[str, ...] = ARCHS
    merge_methods: tuple[str, ...] = MERGE_METHODS
    trees: tuple[int, int] = (1, 4)
    depth: tuple[int, int] = (1, 4)
    fan_out: tuple[int, int] = (1, 8)
    hidden: tuple[int, ...] = (32, 64)
    layers: tuple[int, ...] = (2, 3)
    lr: tuple[float, float] = (1e-5, 1e-3)
    steps: tuple[int, int] = (20, 2000)
    # The budget fit lowers the top of a tree's step range down to this, no further: long
    # fine-tunes stay in every draw; past it, the fit cuts root steps, then whole trees.
    min_steps_top: int = 500
    weight_decay: tuple[float, float] = (0.0, 0.1)
    root_steps: tuple[int, int] = (200, 600)
    min_root_steps: int = 60
    batch_sizes: tuple[int, ...] = (32, 64)
    max_models: int = 40  # per draw, extras (merges, casts, re-uploads, adapters) included
    budget_seconds: float = 150.0  # estimated single-thread build time of one draw

    @classmethod
    def small(cls) -> SweepShape:
        """Draws that build in seconds: for the CI test of the sweep's plumbing."""
        return cls(
            trees=(1, 2), depth=(1, 2), fan_out=(1, 3), hidden=(16,), layers=(1,),
            steps=(5, 40), min_steps_top=5, root_steps=(40, 80), min_root_steps=20,
            batch_sizes=(16,),
            max_models=10, budget_seconds=12.0,
        )


@dataclass
class Draw:
    sweep_seed: int
    index: int
    seed: int
    spec: dict[str, Any]
    estimate_seconds: float
    # What the budget fit changed: {"child_steps_max", "root_steps_scale",
    # "adapters_off", "trees_dropped"}; empty when the draw fitted as drawn.
    adjustments: dict[str, Any] = field(default_factory=dict)

    @property
    def held_out(self) -> bool:
        return self.sweep_seed >= HOLDOUT_SEED


def draw_seed(sweep_seed: int, index: int) -> int:
    """Draw i of sweep S: independent of how many draws the sweep has."""
    digest = hashlib.sha256(f"lineage-zoo-sweep/{sweep_seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def draw(sweep_seed: int, index: int, shape: SweepShape | None = None) -> Draw:
    """The spec of draw `index` of sweep `sweep_seed`, fitted to the shape's budget."""
    shape = shape or SweepShape()
    seed = draw_seed(sweep_seed, index)
    rng = random.Random(seed)
    n_trees = rng.randint(*shape.trees)
    # Room for the tree's extras (up to 2 merges, 2 casts, a re-upload) beside its nodes.
    per_tree = max(2, shape.max_models // n_trees - 5)
    spec = {
        "name": f"sweep-{sweep_seed}-{index}",
        "seed": seed,
        "cards": {"omit_base": _r(rng.uniform(0, 0.3)), "wrong_base": _r(rng.uniform(0, 0.2))},
        "trees": [_draw_tree(rng, shape, per_tree) for _ in range(n_trees)],
    }
    result = Draw(sweep_seed, index, seed, spec, 0.0)
    _fit_budget(result, shape)
    return result


def _r(value: float) -> float:
    """Four significant digits: specs stay readable and their hash stable."""
    return float(f"{value:.4g}")


def _draw_tree(rng: random.Random, shape: SweepShape, max_nodes: int) -> dict[str, Any]:
    arch = rng.choice(shape.archs)
    # A UNet's step costs several transformer steps (convolutions): its narrower widths.
    hidden = rng.choice(shape.hidden) // (2 if arch == "unet" else 1)
    branching = _draw_branching(rng, shape, max_nodes)
    lora_share = rng.choice((0.0, 0.3, 0.6, 1.0))
    relation = [
        ["lora" if rng.random() < lora_share else "finetune" for _ in range(rng.randint(1, 3))]
        for _ in branching
    ]
    tree: dict[str, Any] = {
        "arch": arch,
        "init": rng.choice(INITS),
        "branching": branching,
        "relation": relation,
        "lora_ranks": [rng.choice(LORA_RANKS) for _ in range(rng.randint(1, 3))],
        "lora_targets": rng.choice(LORA_TARGET_SETS),
        "adapters": rng.random() < 0.5,
        "merges": _draw_merges(rng, shape, branching),
        "casts": sorted(rng.sample(CAST_DTYPES, rng.randint(0, 2))),
        "reuploads": rng.randint(0, 1),
        "size": {
            "hidden": hidden,
            "layers": rng.choice(shape.layers),
            "heads": 4,
            "intermediate": 2 * hidden,
        },
        "train": {
            "root_steps": rng.randint(*shape.root_steps),
            "root_lr": _r(math.exp(rng.uniform(math.log(1e-3), math.log(3e-3)))),
            "batch_size": rng.choice(shape.batch_sizes),
        },
        "vary": {
            "lr": list(shape.lr),
            "steps": list(shape.steps),
            "optimizers": list(OPTIMIZERS),
            "weight_decay": list(shape.weight_decay),
        },
    }
    return tree


def _draw_branching(rng: random.Random, shape: SweepShape, max_nodes: int) -> list[int]:
    """Children per node at each depth, cut so the tree (root included) stays under
    `max_nodes`; a level that no longer fits ends the tree there."""
    branching, width, count = [], 1, 1
    for _ in range(rng.randint(*shape.depth)):
        fan_out = rng.randint(*shape.fan_out)
        fan_out = min(fan_out, (max_nodes - count) // width)
        if fan_out < 1:
            break
        branching.append(fan_out)
        width *= fan_out
        count += width
    return branching or [1]


def _draw_merges(rng: random.Random, shape: SweepShape, branching: list[int]) -> list[dict]:
    """0-2 merges of siblings; with two, sometimes a merge of the two merges as well."""
    widest = max(branching)
    if widest < 2:
        return []  # a merge combines siblings; no node here has two children
    merges: list[dict] = []
    for _ in range(rng.randint(0, 2)):
        # Two merges of the same siblings by the same parameter-free method would be
        # byte-identical (a re-upload, not a second merge): the second uses another.
        taken = {m["method"] for m in merges}
        merges.append(_draw_merge(rng, shape, rng.randint(2, min(3, widest)), taken))
    if len(merges) == 2 and rng.random() < 0.5:
        merges.append({**_draw_merge(rng, shape, 2), "sources": "merges"})
    return merges


def _draw_merge(rng: random.Random, shape: SweepShape, of: int,
                taken: set[str] = frozenset()) -> dict[str, Any]:
    method = rng.choice([m for m in shape.merge_methods if m not in taken]
                        or list(shape.merge_methods))
    merge: dict[str, Any] = {"of": 2 if method == "slerp" else of, "method": method}
    if method == "task_arithmetic":
        merge["scale"] = _r(rng.uniform(0.3, 1.0))
    elif method == "ties":
        merge.update(scale=1.0, density=_r(rng.uniform(0.2, 0.8)))
    elif method.startswith("dare"):
        merge.update(scale=_r(rng.uniform(0.5, 1.0)), density=_r(rng.uniform(0.3, 0.9)))
    elif method == "slerp":
        merge["t"] = _r(rng.uniform(0.2, 0.8))
    return merge


def estimate_seconds(nodes: list[Node], spec: dict[str, Any]) -> float:
    """Predicted single-thread build time of a planned zoo (see the module doc)."""
    return sum(tree_seconds(nodes, spec))


def tree_seconds(nodes: list[Node], spec: dict[str, Any]) -> list[float]:
    """The estimate per built tree (a spec tree with `count` k builds k trees)."""
    trees = [t for t in spec["trees"] for _ in range(t.get("count", 1))]
    costs = [0.0] * len(trees)
    for n in nodes:
        tree = trees[n.tree]
        factor = UNET_MODEL_FACTOR if n.arch == "unet" else 1.0
        if n.relation in ("root", "finetune", "lora"):
            costs[n.tree] += n.steps * _step_seconds(n.arch, tree)
            costs[n.tree] += factor * MODEL_SECONDS["trained"]
        elif n.relation != "adapter":  # adapters are written with their LoRA twin
            costs[n.tree] += factor * MODEL_SECONDS["copy"]
    return costs


def _step_seconds(arch: str, tree: dict[str, Any]) -> float:
    size, train = tree.get("size", {}), tree.get("train", {})
    # Tiny models are overhead-bound: time grows slower than the arithmetic.
    width = (size.get("hidden", 32) / 32) ** 0.5
    depth = size.get("layers", 2) / 2
    batch = (train.get("batch_size", 32) / 32) ** 0.6
    return STEP_SECONDS[arch] * width * depth * batch


def _fit_budget(result: Draw, shape: SweepShape) -> None:
    spec = result.spec
    while True:
        nodes = plan_zoo(parse_spec(spec))
        costs = tree_seconds(nodes, spec)
        result.estimate_seconds = round(sum(costs), 1)
        if len(nodes) > shape.max_models:
            if not _fewer_models(spec, result):
                return
        elif result.estimate_seconds > shape.budget_seconds:
            if not _cheaper(spec, costs.index(max(costs)), shape, result):
                return
        else:
            return


def _count(result: Draw, key: str) -> None:
    result.adjustments[key] = result.adjustments.get(key, 0) + 1


def _fewer_models(spec: dict[str, Any], result: Draw) -> bool:
    adapters = [t for t in spec["trees"] if t["adapters"]]
    if adapters:
        adapters[-1]["adapters"] = False
        _count(result, "adapters_off")
        return True
    return _drop_tree(spec, len(spec["trees"]) - 1, result)


def _trim(tree: dict[str, Any]) -> bool:
    """One child fewer per node at the deepest level (the level goes at fan-out 1, the
    root's own children stay); merges that no longer find inputs shrink or go."""
    branching = tree["branching"]
    if branching[-1] > 1:
        branching[-1] -= 1
    elif len(branching) > 1:
        branching.pop()
        tree["relation"] = tree["relation"][: len(branching)]
    else:
        return False
    widest = max(branching)
    kept = [{**m, "of": min(m["of"], widest)} for m in tree["merges"]
            if widest >= 2 and m.get("sources", "siblings") == "siblings"]
    if len(kept) >= 2:
        kept += [m for m in tree["merges"] if m.get("sources") == "merges"]
    tree["merges"] = kept
    return True


def _drop_tree(spec: dict[str, Any], index: int, result: Draw) -> bool:
    if len(spec["trees"]) < 2:
        return False
    spec["trees"].pop(index)
    _count(result, "trees_dropped")
    return True


def _cheaper(spec: dict[str, Any], index: int, shape: SweepShape, result: Draw) -> bool:
    """One step down in the cost of tree `index` (the dearest); False when nothing is
    left to give."""
    tree = spec["trees"][index]
    lo, hi = tree["vary"]["steps"]
    floor = max(lo, shape.min_steps_top)
    if hi > floor:
        tree["vary"]["steps"] = [lo, max(floor, int(hi * 0.8))]
        highs = result.adjustments.setdefault("child_steps_max", {})
        highs[tree["arch"]] = min(highs.get(tree["arch"], hi), tree["vary"]["steps"][1])
        return True
    if _trim(tree):
        _count(result, "models_trimmed")
        return True
    if tree["train"]["root_steps"] > shape.min_root_steps:
        steps = tree["train"]["root_steps"]
        tree["train"]["root_steps"] = max(shape.min_root_steps, int(steps * 0.8))
        _count(result, "root_steps_cut")
        return True
    return _drop_tree(spec, index, result)
