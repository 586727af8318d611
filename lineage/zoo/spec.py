"""The zoo spec: what Model Graph to build, parsed from YAML, TOML or a dict.

A spec lists trees; each tree says its architecture, init style, branching per depth and
the relation of each edge. Extras (merges, dtype casts, re-uploads) hang off the tree.
Parsing fills every default, so the normalized dict is the whole truth about a build and
its hash names the cache entry.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lineage.errors import SpecError, UnknownNameError

# Bump when training or writing changes, so cached zoos built by older code are not reused.
ZOO_FORMAT_VERSION = 4

ARCHS = ("vit", "llama", "gpt2", "bert", "unet")
INITS = ("hf", "torch")
EDGE_RELATIONS = ("finetune", "lora")
MERGE_METHODS = (
    "task_arithmetic", "ties", "linear", "dare_ties", "dare_linear", "slerp", "model_stock"
)
MERGE_SOURCES = ("siblings", "merges")
# No PEFT adapter-only repo for these: a diffusers UNet's LoRA has no Hub layout the
# indexer reads, so its LoRA edges publish the merged weights only.
NO_ADAPTER_ARCHS = ("unet",)
CAST_DTYPES = ("fp16", "bf16")
OPTIMIZERS = ("adamw", "sgd")  # sgd: momentum 0.9
LORA_TARGET_SETS = ("attention", "attention+mlp")


@dataclass(frozen=True)
class Size:
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    intermediate: int = 64
    patch: int = 2  # ViT only: 8x8 digits -> 16 patches of 2x2


@dataclass(frozen=True)
class Training:
    root_steps: int = 300
    root_lr: float = 3e-3
    child_steps: int = 60
    child_lr: float = 1e-3
    lora_lr: float = 3e-3
    batch_size: int = 256
    optimizer: str = "adamw"  # children's optimizer (roots always pretrain with AdamW)
    weight_decay: float = 0.0  # children's weight decay


@dataclass(frozen=True)
class Vary:
    """Per-node draws for a tree's trained children (the sweep's wide ranges).

    Each empty field means "the tree's `train` value"; set, every child draws its own:
    `lr` and `steps` log-uniform in (lo, hi), `optimizers` a uniform choice,
    `weight_decay` uniform in (lo, hi). LoRA children draw from the same ranges.
    """

    lr: tuple[float, ...] = ()
    steps: tuple[int, ...] = ()
    optimizers: tuple[str, ...] = ()
    weight_decay: tuple[float, ...] = ()


@dataclass(frozen=True)
class MergeSpec:
    of: int = 2  # how many models one merge combines
    method: str = "task_arithmetic"
    scale: float = 0.5  # task-vector scaling (lambda); TIES uses it on the elected vector
    density: float = 0.2  # TIES / DARE: fraction of each task vector kept
    t: float = 0.5  # SLERP: 0 = the first parent, 1 = the second
    # siblings: fine-tunes of one base; merges: earlier merges of the tree (a merge of
    # merges), against their common base (else the tree's root).
    sources: str = "siblings"


@dataclass(frozen=True)
class TreeSpec:
    arch: str = "vit"
    init: str = "hf"
    count: int = 1  # identical-shape trees, each with its own root seed
    branching: tuple[int, ...] = (2,)
    # One entry per depth; an entry is a relation or a list cycled over that depth's edges.
    relation: tuple[tuple[str, ...], ...] = (("finetune",),)
    lora_ranks: tuple[int, ...] = (4,)
    lora_targets: str = "attention"  # attention | attention+mlp
    adapters: bool = True  # each LoRA edge also publishes a PEFT adapter-only repo
    merges: tuple[MergeSpec, ...] = ()
    casts: tuple[str, ...] = ()
    reuploads: int = 0
    root_task: str | None = None  # default: the family's pretraining task
    tasks: tuple[str, ...] | None = None  # default: the family's task pool
    split: str | None = None  # a label such as "ft" or "lora" (VTHR-style splits)
    size: Size = field(default_factory=Size)
    train: Training = field(default_factory=Training)
    vary: Vary = field(default_factory=Vary)


@dataclass(frozen=True)
class CardSpec:
    omit_base: float = 0.0  # fraction of non-root cards without base_model
    wrong_base: float = 0.0  # fraction of non-root cards naming a wrong base_model


@dataclass(frozen=True)
class ZooSpec:
    name: str
    seed: int = 0
    trees: tuple[TreeSpec, ...] = ()
    cards: CardSpec = field(default_factory=CardSpec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """Content hash of the normalized spec (plus the zoo format version)."""
        blob = json.dumps(
            {"v": ZOO_FORMAT_VERSION, "spec": self.to_dict()}, sort_keys=True, default=list
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def load_spec(source: str | Path | dict[str, Any] | ZooSpec) -> ZooSpec:
    """A ZooSpec from a preset name, a .yaml/.yml/.toml/.json path, or a dict."""
    if isinstance(source, ZooSpec):
        return source
    if isinstance(source, dict):
        return parse_spec(source)
    from lineage.zoo.presets import PRESETS

    text = str(source)
    if text in PRESETS:
        return parse_spec(PRESETS[text])
    path = Path(text)
    if not path.is_file():
        if path.suffix:
            raise SpecError(f"zoo spec {text!r}", "no such file", "Give a YAML/TOML path")
        raise UnknownNameError.of("zoo preset", text, list(PRESETS))
    return parse_spec(_read_file(path))


def _read_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:  # YAML is a superset of JSON
            data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise SpecError(f"zoo spec {str(path)!r}", f"cannot be parsed ({err})") from None
    if not isinstance(data, dict):
        raise SpecError(f"zoo spec {str(path)!r}", "is not a mapping at top level")
    return data


def parse_spec(data: dict[str, Any]) -> ZooSpec:
    """Validate a spec mapping and fill every default."""
    _check_keys("zoo spec", data, {"name", "seed", "trees", "cards", "train", "size", "vary"})
    if not data.get("trees"):
        raise SpecError("zoo spec", "has no trees", "Add a `trees:` list with at least one tree")
    # Top-level `train`/`size`/`vary` are defaults for every tree.
    shared = {k: data[k] for k in ("train", "size", "vary") if k in data}
    trees = tuple(
        _parse_tree(i, {**shared, **t} if isinstance(t, dict) else t)
        for i, t in enumerate(data["trees"])
    )
    cards = _build(CardSpec, data.get("cards", {}), "cards")
    for frac in (cards.omit_base, cards.wrong_base):
        if not 0 <= frac <= 1 or cards.omit_base + cards.wrong_base > 1:
            raise SpecError("cards", f"fractions {frac} must lie in [0, 1] and sum to <= 1")
    return ZooSpec(
        name=str(data.get("name", "zoo")), seed=int(data.get("seed", 0)), trees=trees, cards=cards
    )


def _parse_tree(index: int, raw: Any) -> TreeSpec:
    where = f"trees[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(where, "is not a mapping")
    fields = set(TreeSpec.__dataclass_fields__)
    _check_keys(where, raw, fields)
    raw = dict(raw)
    _one_of(where + ".arch", raw.get("arch", "vit"), ARCHS)
    _one_of(where + ".init", raw.get("init", "hf"), INITS)
    raw["branching"] = tuple(int(b) for b in _as_list(raw.get("branching", [2])))
    raw["relation"] = _parse_relations(where, raw.get("relation", "finetune"), raw["branching"])
    raw["lora_ranks"] = tuple(int(r) for r in _as_list(raw.get("lora_ranks", [4])))
    raw["casts"] = tuple(_one_of(where + ".casts", c, CAST_DTYPES) for c in raw.get("casts", []))
    raw["merges"] = tuple(_parse_merge(where, m) for m in raw.get("merges", []))
    for key in ("tasks",):
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    raw["size"] = _build(Size, raw.get("size", {}), where + ".size")
    raw["train"] = _build(Training, raw.get("train", {}), where + ".train")
    _one_of(where + ".train.optimizer", raw["train"].optimizer, OPTIMIZERS)
    _one_of(where + ".lora_targets", raw.get("lora_targets", "attention"), LORA_TARGET_SETS)
    raw["vary"] = _parse_vary(where + ".vary", raw.get("vary", {}))
    tree = TreeSpec(**raw)
    _check_tasks(where, tree)
    if tree.count < 1 or any(b < 0 for b in tree.branching):
        raise SpecError(where, "count must be >= 1 and branching entries >= 0")
    return tree


def _check_tasks(where: str, tree: TreeSpec) -> None:
    # Caught here, not an hour into a build.
    from lineage.zoo.tasks import FAMILY_OF_ARCH, TASKS, get_task

    for name in (*(tree.tasks or ()), *([tree.root_task] if tree.root_task else [])):
        _one_of(where + ".tasks", name, TASKS)
        if get_task(name).family != FAMILY_OF_ARCH[tree.arch]:
            raise SpecError(
                f"{where} task {name!r}",
                f"does not fit architecture {tree.arch!r}",
                "Image tasks (digits-*) go with vit, text tasks (text-*) with "
                "llama/gpt2/bert, denoising tasks (denoise-*) with unet",
            )


def _parse_relations(where: str, raw: Any, branching: tuple[int, ...]) -> tuple:
    # "lora" -> every depth; ["finetune", "lora"] -> per depth; [["finetune", "lora"]] cycles.
    levels = [raw] * len(branching) if isinstance(raw, str) else list(raw)
    if len(levels) < len(branching):  # the last entry repeats for deeper levels
        levels += [levels[-1]] * (len(branching) - len(levels))
    out = []
    for level in levels[: len(branching)]:
        names = (level,) if isinstance(level, str) else tuple(level)
        out.append(tuple(_one_of(where + ".relation", n, EDGE_RELATIONS) for n in names))
    return tuple(out)


def _parse_vary(where: str, raw: Any) -> Vary:
    if not isinstance(raw, dict):
        raise SpecError(where, "is not a mapping")
    _check_keys(where, raw, set(Vary.__dataclass_fields__))
    out: dict[str, tuple] = {}
    for key, kind in (("lr", float), ("steps", int), ("weight_decay", float)):
        if raw.get(key) is None:
            continue
        lo_hi = _as_list(raw[key])
        try:
            lo, hi = (kind(v) for v in lo_hi)
        except (TypeError, ValueError):
            raise SpecError(f"{where}.{key}", f"is {raw[key]!r}", "Give [low, high]") from None
        if not 0 <= lo <= hi or (key != "weight_decay" and lo <= 0):
            raise SpecError(f"{where}.{key}", f"range [{lo}, {hi}] is empty or not positive")
        out[key] = (lo, hi)
    if raw.get("optimizers"):
        out["optimizers"] = tuple(_one_of(where + ".optimizers", o, OPTIMIZERS)
                                  for o in _as_list(raw["optimizers"]))
    return Vary(**out)


def _parse_merge(where: str, raw: Any) -> MergeSpec:
    merge = _build(MergeSpec, raw, where + ".merges")
    _one_of(where + ".merges.method", merge.method, MERGE_METHODS)
    _one_of(where + ".merges.sources", merge.sources, MERGE_SOURCES)
    if merge.of < 2:
        raise SpecError(where + ".merges.of", f"is {merge.of}", "A merge needs >= 2 parents")
    if merge.method == "slerp" and merge.of != 2:
        raise SpecError(where + ".merges.of", f"is {merge.of} for slerp",
                        "SLERP interpolates exactly two models: set of: 2")
    return merge


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise SpecError(where, "is not a mapping")
    _check_keys(where, raw, set(cls.__dataclass_fields__))
    try:
        types = {k: type(getattr(cls(), k)) for k in raw}
        return cls(**{k: types[k](v) for k, v in raw.items()})
    except (TypeError, ValueError) as err:
        raise SpecError(where, f"has a bad value ({err})") from None


def _check_keys(where: str, raw: dict, valid: set[str]) -> None:
    for key in raw:
        if key not in valid:
            raise UnknownNameError.of(f"{where} key", str(key), sorted(valid))


def _one_of(where: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UnknownNameError.of(where, str(value), valid)
    return value


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]
