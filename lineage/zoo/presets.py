"""Named zoo specs. `tiny` is for tests and the demo; `vthr` mirrors MoTHer's VTHR
benchmark shape; `mixed` puts every relation and several architectures together."""

from __future__ import annotations

from typing import Any

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "cards": {"omit_base": 0.15, "wrong_base": 0.15},
    "train": {"root_steps": 300, "child_steps": 50, "batch_size": 128},
    "trees": [
        {
            "arch": "vit",
            "init": "hf",
            "branching": [3],
            "relation": [["finetune", "finetune", "lora"]],
            "lora_ranks": [4],
            "merges": [{"of": 2, "method": "task_arithmetic"}],
            "casts": ["fp16"],
            "reuploads": 1,
        },
        {
            "arch": "llama",
            "init": "torch",
            "branching": [2, 1],
            "relation": [["finetune", "lora"], "finetune"],
            "lora_ranks": [8],
            "casts": ["bf16"],
        },
    ],
}


def _vthr_split(split: str, relation: str, ranks: list[int]) -> dict[str, Any]:
    # MoTHer's VTHR: 5 trees x (1 root + 4 children + 16 grandchildren) = 105 models.
    return {
        "arch": "vit",
        "init": "hf",
        "count": 5,
        "branching": [4, 4],
        "relation": relation,
        "lora_ranks": ranks,
        "adapters": False,
        "split": split,
    }


_VTHR_TRAIN = {"root_steps": 800, "child_steps": 80, "batch_size": 128}
VTHR_FT = {
    "name": "vthr-ft",
    "seed": 0,
    "train": _VTHR_TRAIN,
    "trees": [_vthr_split("ft", "finetune", [4])],
}
VTHR_LORA = {
    "name": "vthr-lora",
    "seed": 0,
    "train": _VTHR_TRAIN,
    "trees": [_vthr_split("lora", "lora", [2, 4, 8])],
}
VTHR = {
    "name": "vthr",
    "seed": 0,
    "train": _VTHR_TRAIN,
    "trees": VTHR_FT["trees"] + VTHR_LORA["trees"],
}

MIXED: dict[str, Any] = {
    "name": "mixed",
    "seed": 0,
    "cards": {"omit_base": 0.2, "wrong_base": 0.1},
    "train": {"root_steps": 600, "child_steps": 80, "batch_size": 256},
    "trees": [
        {
            "arch": "vit",
            "init": "hf",
            "branching": [3, 2],
            "relation": [["finetune", "lora", "finetune"], ["finetune", "lora"]],
            "lora_ranks": [2, 4, 8],
            "casts": ["fp16", "bf16"],
            "reuploads": 1,
            "merges": [
                {"of": 2, "method": "task_arithmetic"},
                {"of": 2, "method": "ties", "scale": 1.0},
            ],
        },
        {
            "arch": "vit",
            "init": "torch",
            "branching": [3, 1],
            "relation": [["finetune", "lora"]],
            "lora_ranks": [4],
            "merges": [{"of": 2, "method": "ties", "scale": 1.0}],
            "casts": ["fp16"],
            "reuploads": 1,
        },
        {
            "arch": "llama",
            "init": "hf",
            "branching": [2, 2],
            "relation": [["finetune", "lora"]],
            "lora_ranks": [4, 8],
            "merges": [{"of": 2, "method": "task_arithmetic"}],
            "casts": ["bf16"],
            "reuploads": 1,
        },
        {
            "arch": "llama",
            "init": "torch",
            "branching": [2, 1],
            "relation": [["lora", "finetune"], "finetune"],
            "lora_ranks": [8],
            "casts": ["fp16"],
        },
        {
            "arch": "gpt2",
            "init": "hf",
            "branching": [2, 1],
            "relation": [["finetune", "lora"]],
            "lora_ranks": [4],
            "casts": ["fp16"],
            "reuploads": 1,
        },
    ],
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": TINY,
    "vthr": VTHR,
    "vthr-ft": VTHR_FT,
    "vthr-lora": VTHR_LORA,
    "mixed": MIXED,
}
