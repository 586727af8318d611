"""Model cards as the Hub serves them: README.md with YAML front matter.

The card states what the plan decided it claims (the truth, nothing, or a wrong base),
not necessarily the truth.
"""

from __future__ import annotations

import yaml

from lineage.zoo.plan import Node

# Hub vocabulary: a merged LoRA is published as a fine-tune, a re-upload claims one too.
CARD_RELATION = {
    "finetune": "finetune",
    "lora": "finetune",
    "adapter": "adapter",
    "merge": "merge",
    "quantized": "quantized",
    "reupload": "finetune",
}
PIPELINE = {
    "vit": "image-classification",
    "llama": "text-generation",
    "gpt2": "text-generation",
    "bert": "fill-mask",
    "unet": "unconditional-image-generation",
}


def card_relation(node: Node) -> str | None:
    """The base_model_relation the card states (None when the card names no base)."""
    return CARD_RELATION.get(node.relation) if node.card_base else None


def render_card(node: Node) -> str:
    meta: dict = {}
    if node.card_base:
        meta["base_model"] = node.card_base[0] if len(node.card_base) == 1 else node.card_base
        meta["base_model_relation"] = card_relation(node)
    meta["license"] = node.license
    meta["library_name"] = (
        "peft" if node.relation == "adapter" else "diffusers" if node.arch == "unet"
        else "transformers"
    )
    meta["pipeline_tag"] = PIPELINE[node.arch]
    meta["tags"] = ["lineage-zoo", node.arch, *_relation_tags(node)]
    front = yaml.safe_dump(meta, sort_keys=False)
    return f"---\n{front}---\n\n# {node.id}\n\n{_describe(node)}\n"


def _relation_tags(node: Node) -> list[str]:
    if node.relation in ("lora", "adapter"):
        return ["lora"]
    if node.relation == "merge":
        return ["merge", node.merge_method or ""]
    return []


def _describe(node: Node) -> str:
    if node.relation == "root":
        return f"A tiny {node.arch} pretrained from scratch on `{node.task}`."
    if node.relation == "quantized":
        return f"A {node.dtype} copy."
    if node.relation == "merge":
        return f"A {node.merge_method} merge of {len(node.parents)} models."
    if node.relation == "reupload":
        return "A re-upload."
    kind = f"LoRA (rank {node.rank})" if node.rank else "full"
    return f"A {kind} fine-tune on `{node.task}`."
