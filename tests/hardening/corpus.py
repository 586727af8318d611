"""A corpus of hostile metadata beside good models, written for real into a folder.

Each hostile model is a folder that a real attacker could upload: the attack sits in
one file (config, adapter config, diffusers index, shard index, safetensors header,
card), everything else is a valid tiny model. `EXPECTED` says what must become of each:
"indexed" (a card problem is never fatal: the model is indexed with card_error) or
"failed" with a phrase the failure line must contain.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from lineage.weights import write_safetensors

DEEP = 100_000  # levels of nesting in the deep documents (the attack)

ALIAS_BOMB = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
{field}: *i
---
"""


def weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(4, 4, generator=g), "b": torch.randn(4, generator=g)}


def good_model(folder: Path, seed: int, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", weights(seed))
    cfg = config if config is not None else {"model_type": "tiny", "architectures": ["Tiny"]}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def adapter(folder: Path, seed: int, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "adapter_model.safetensors", weights(seed))
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def raw_safetensors(path: Path, header: bytes, data: bytes = b"", length: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)


def deep_json(levels: int = DEEP) -> str:
    return '{"a": ' + "[" * levels + "]" * levels + "}"


def deep_yaml(levels: int = DEEP) -> str:
    return "---\ntags: " + "[" * levels + "]" * levels + "\n---\n"


LORA = {"peft_type": "LORA", "r": 4, "base_model_name_or_path": "good/a"}

EXPECTED: dict[str, tuple[str, str]] = {}


def _expect(model_id: str, outcome: str, phrase: str = "") -> None:
    EXPECTED[model_id] = (outcome, phrase)


def write_corpus(root: Path) -> Path:
    """Good models in root/good, hostile ones in root/bad; returns root."""
    for i, name in enumerate(("a", "b", "c")):
        good_model(root / "good" / name, i)
        _expect(f"good/{name}", "indexed")
    good_model(root / "good" / "d", 3)
    (root / "good" / "d" / "README.md").write_text(
        "---\nbase_model: good/a\nlicense: mit\ntags: [x, y]\n---\n# d\n"
    )
    _expect("good/d", "indexed")
    adapter(root / "good" / "lora", 4, LORA)
    _expect("good/lora", "indexed")

    bad = root / "bad"
    # 1: alias bombs in the card (never fatal: indexed, card_error recorded)
    for field in ("tags", "license"):
        good_model(bad / f"card-bomb-{field}", 10)
        (bad / f"card-bomb-{field}" / "README.md").write_text(ALIAS_BOMB.format(field=field))
        _expect(f"bad/card-bomb-{field}", "indexed", "alias bomb")
    # 2: wrongly typed JSON fields
    typed = {
        "adapter-base-dict": {**LORA, "base_model_name_or_path": {"a": 1}},
        "adapter-base-int": {**LORA, "base_model_name_or_path": 5},
        "adapter-base-list": {**LORA, "base_model_name_or_path": ["x"]},
        "adapter-rank-huge": {**LORA, "r": 2**70},
        "adapter-peft-type-int": {**LORA, "peft_type": 7},
        "adapter-base-ansi": {**LORA, "base_model_name_or_path": "\x1b[31mred\x1b[0m/x"},
    }
    for name, cfg in typed.items():
        adapter(bad / name, 11, cfg)
        _expect(f"bad/{name}", "failed", "adapter_config.json: field")
    for name, cfg in {
        "config-model-type-dict": {"model_type": {"x": 1}},
        "config-architectures-int": {"architectures": 5},
        "config-architectures-mixed": {"architectures": [{"a": 1}, 2]},
    }.items():
        good_model(bad / name, 12, cfg)
        _expect(f"bad/{name}", "failed", "config.json: field")
    # 3: deep nesting in every metadata file
    good_model(bad / "deep-config", 13)
    (bad / "deep-config" / "config.json").write_text(deep_json())
    _expect("bad/deep-config", "failed", "nests")
    good_model(bad / "deep-card", 14)
    (bad / "deep-card" / "README.md").write_text(deep_yaml())
    _expect("bad/deep-card", "indexed", "nests deeper")
    pipe = bad / "deep-model-index"
    good_model(pipe / "unet", 15)
    (pipe / "model_index.json").write_text(deep_json())
    _expect("bad/deep-model-index", "failed", "nests")
    shard = bad / "deep-shard-index"
    shard.mkdir(parents=True)
    (shard / "model.safetensors.index.json").write_text(deep_json())
    _expect("bad/deep-shard-index", "failed", "nests")
    header = ('{"w": ' + "[" * DEEP + "]" * DEEP + "}").encode()
    raw_safetensors(bad / "deep-header" / "model.safetensors", header)
    _expect("bad/deep-header", "failed", "nests")
    # 4: a diffusers index that is not an object
    for name, doc in (("model-index-list", "[1, 2]"), ("model-index-int", "5")):
        good_model(bad / name / "unet", 16)
        (bad / name / "model_index.json").write_text(doc)
        _expect(f"bad/{name}", "failed", "expected a JSON object")
    # 5: a zero-size tensor with an enormous dim
    entry = {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}
    raw_safetensors(bad / "zero-size-huge" / "model.safetensors", json.dumps({"w": entry}).encode())
    _expect("bad/zero-size-huge", "failed", "2**62")
    # 9: a pickle, without --allow-pickle
    (bad / "pickle").mkdir(parents=True)
    torch.save(weights(17), bad / "pickle" / "pytorch_model.bin")
    (bad / "pickle" / "adapter_config.json").write_text(json.dumps(LORA))
    _expect("bad/pickle", "failed", "pickle")
    # 13: model.safetensors is a link to a text file: its first 8 bytes are no length
    secret = root / "secret.txt"
    secret.write_text("SECRETS!" * 4)
    (bad / "symlink").mkdir(parents=True)
    os.symlink(secret, bad / "symlink" / "model.safetensors")
    _expect("bad/symlink", "failed", "header length field")
    return root


def secret_as_number(root: Path) -> str:
    """The number a header-length error would print if it echoed the linked file."""
    return str(struct.unpack("<Q", (root / "secret.txt").read_bytes()[:8])[0])
