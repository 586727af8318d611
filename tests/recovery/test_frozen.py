"""A merged LoRA whose rank fills the matrix is still a LoRA: what it left untouched says
so (issue 10, held-out 1024/4: rank-32 LoRA children of a 32-wide GPT-2 read as
fine-tunes). Real GPT-2 models trained here, merged with PEFT, saved as safetensors,
indexed into a real catalog and recovered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from catalog import Catalog
from jobs.local_index import index_local
from jobs.recover import run_recover
from lineage.recovery.features import group_features
from lineage.recovery.frozen import adapter_trained, frozen_vector_share
from lineage.recovery.inputs import ModelInput, TensorStat

WIDTH, VOCAB = 8, 32


def _train(model: torch.nn.Module, seed: int, steps: int = 6) -> None:
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (4, 8), generator=gen)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def _lora(base: torch.nn.Module, targets: list[str], seed: int) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=WIDTH, lora_alpha=2 * WIDTH, target_modules=targets,
                        fan_in_fan_out=True, lora_dropout=0.0)
    wrapped = get_peft_model(base, config)
    for name, p in wrapped.named_parameters():  # B starts at 0: move A and B both
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    _train(wrapped, seed)
    return wrapped.merge_and_unload()


@pytest.fixture(scope="module")
def gpt2_family(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root; full fine-tune (position embeddings frozen: a whole matrix untouched, as
    BERT's pooler is under a masked-LM loss); rank-8 LoRA on every linear layer of an
    8-wide model (full rank in each); rank-8 LoRA on attention only."""
    import copy

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=WIDTH, n_layer=1, n_head=2, vocab_size=VOCAB, n_positions=16)
    root = GPT2LMHeadModel(config)
    _train(root, 0)
    full = copy.deepcopy(root)
    full.transformer.wpe.weight.requires_grad_(False)
    _train(full, 1)
    every = _lora(copy.deepcopy(root), ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"], 2)
    attention = _lora(copy.deepcopy(root), ["c_attn", "attn.c_proj"], 3)
    out = tmp_path_factory.mktemp("frozen")
    for name, m in (("root", root), ("full", full), ("lora-all", every),
                    ("lora-attn", attention)):
        m.save_pretrained(out / "org" / name, safe_serialization=True)
    return out


def test_a_full_rank_lora_is_a_lora_and_a_partly_frozen_fine_tune_is_not(gpt2_family, tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    index_local(catalog, [gpt2_family], progress=False)
    edges = {e.child: e for e in run_recover(catalog).result.edges}
    assert {c: (e.parent, e.relation) for c, e in edges.items()} == {
        "org/full": ("org/root", "finetune"),
        "org/lora-all": ("org/root", "lora"),
        "org/lora-attn": ("org/root", "lora"),
    }
    # the rank could not tell: every changed matrix of the LoRA on all layers is full rank
    assert edges["org/lora-all"].evidence["rank_fraction"] == 1.0
    assert edges["org/lora-all"].evidence["frozen_vectors"] == 1.0
    assert edges["org/full"].evidence["frozen_vectors"] < 0.5


def _stat(digest: str, dtype: str, shape: tuple[int, ...]) -> TensorStat:
    size = int(np.prod(shape))
    return TensorStat(shape, dtype, digest, 0.0, 1.0, 0.0, np.ones(size, np.float32))


@pytest.mark.parametrize("dtype, share", [("F32", 1.0), ("BF16", None)])
def test_only_exact_precision_vectors_count(dtype, share):
    """A half-precision norm gain can round back to its parent's bits after a real
    step, so bfloat16 vectors say nothing and the rank decides alone."""
    def model(name: str, changed: str) -> ModelInput:
        return ModelInput(name, tensors={"w": _stat(changed, dtype, (4, 4)),
                                         "u": _stat("untouched", dtype, (4, 4)),
                                         "ln": _stat("gain", dtype, (4,))})
    features = group_features([model("a", "w0"), model("b", "w1")])
    assert features.names == ["u", "w"]
    assert frozen_vector_share(features, 0, 1) == share
    assert adapter_trained(features, 0, 1, low_rank=False) is (share is not None)
    assert adapter_trained(features, 0, 1, low_rank=True)


def test_a_fine_tune_that_moved_its_vectors_is_not_adapter_trained():
    def model(name: str, changed: str, gain: str) -> ModelInput:
        return ModelInput(name, tensors={"w": _stat(changed, "F32", (4, 4)),
                                         "u": _stat("untouched", "F32", (4, 4)),
                                         "ln": _stat(gain, "F32", (4,)),
                                         "bias": _stat(gain + "b", "F32", (4,))})
    features = group_features([model("a", "w0", "g0"), model("b", "w1", "g1")])
    assert frozen_vector_share(features, 0, 1) == 0.0
    # moved norms and biases overrule a low rank (a fine-tune that barely moved can
    # read as low-rank where its smallest singular values fall under the rounding)
    assert not adapter_trained(features, 0, 1, low_rank=True)
    assert not adapter_trained(features, 0, 1, low_rank=False)
