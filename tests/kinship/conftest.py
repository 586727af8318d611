"""A small real zoo for kinship tests, built once per session in a temp folder.

GPT-2 (hidden 64, 2 layers, vocab 96) from transformers: a base, two fine-tunes trained
for real (a few AdamW steps on random tokens, different seeds), a grandchild of the
first, a structured low-rank + noise edit of the base, a bf16 copy of a fine-tune, a
copy with 2 extra vocabulary rows, and an unrelated tiny Llama for incompatibility.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lineage.weights import write_safetensors

VOCAB = 96


def _gpt2(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=32,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def _train(model, seed: int, steps: int = 6) -> None:
    """Real fine-tuning: next-token loss on a seeded random token stream."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (8, 16), generator=gen)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _low_rank_edit(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """base + rank-4 update + small noise on every matrix: a LoRA-merged-like child."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, w in state.items():
        w = w.clone()
        if w.ndim == 2:
            u = torch.randn(w.shape[0], 4, generator=gen) * 0.02
            v = torch.randn(4, w.shape[1], generator=gen) * 0.02
            w += u @ v + 1e-3 * torch.randn(w.shape, generator=gen)
        out[name] = w
    return out


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # Tiny matmuls: one thread avoids waking a second on a shared, busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build_zoo(tmp_path_factory.mktemp("kinship-zoo"))
    finally:
        torch.set_num_threads(threads)


def _build_zoo(root: Path) -> dict[str, Path]:
    base = _gpt2(0)
    paths = {"base": _save(base, root / "base")}
    for label, seed in (("ft1", 1), ("ft2", 2)):
        child = _gpt2(0)
        child.load_state_dict(base.state_dict())
        _train(child, seed)
        paths[label] = _save(child, root / label)
        if label == "ft1":
            _train(child, 11)
            paths["ft1_child"] = _save(child, root / "ft1_child")
    state = load_file(paths["base"] / "model.safetensors")
    paths["lowrank"] = _write(root / "lowrank", _low_rank_edit(state, 5))
    ft2 = load_file(paths["ft2"] / "model.safetensors")
    paths["ft2_bf16"] = _write(root / "ft2_bf16", {k: v.bfloat16() for k, v in ft2.items()})
    ft1 = load_file(paths["ft1"] / "model.safetensors")
    wte = ft1["transformer.wte.weight"]
    ft1["transformer.wte.weight"] = torch.cat([wte, torch.randn(2, wte.shape[1])])
    ft1["transformer.extra_scale"] = torch.ones(3)  # a tensor the others lack
    paths["ft1_vocab"] = _write(root / "ft1_vocab", ft1)
    paths["llama"] = _llama(root / "llama")
    return paths


def _write(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    write_safetensors(folder / "model.safetensors", tensors)
    return folder


def _llama(folder: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32,
    )  # fmt: skip
    return _save(LlamaForCausalLM(config), folder)
