"""Training loops: pretraining a root, full fine-tuning and LoRA fine-tuning.

Everything is seeded from the model's own seed (weights init, batch order), so the same
spec gives byte-identical weights on the same machine and library versions.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import torch

from lineage.zoo.arch import LORA_MLP_TARGETS, LORA_TARGETS
from lineage.zoo.tasks import Task


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One intra-op thread: these models are too small to gain from more, a shared 2-core
    machine runs 5-10x slower oversubscribed, and fixed threading keeps sums reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(
    model: torch.nn.Module,
    task: Task,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
) -> list[float]:
    """AdamW or SGD (momentum 0.9) with cosine decay; returns the loss every step (to
    check training happened)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1)))
    )
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        loss = task.loss(model, task.train_batch(gen, batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


def wrap_lora(
    model: torch.nn.Module, arch: str, rank: int, seed: int, targets: str = "attention"
) -> torch.nn.Module:
    """A PEFT LoRA model over `model` (alpha = 2 * rank; only adapters and head train);
    `targets`: the attention projections, or "attention+mlp" for the MLP's too."""
    from peft import LoraConfig, get_peft_model

    modules, to_save = LORA_TARGETS[arch]
    if targets == "attention+mlp":
        modules = modules + LORA_MLP_TARGETS[arch]
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=modules,
        modules_to_save=to_save or None,
        fan_in_fan_out=arch == "gpt2",  # GPT-2's Conv1D stores (in, out)
    )
    torch.manual_seed(seed)  # LoRA's A matrices are random
    with warnings.catch_warnings():  # PEFT calls a deprecated transformers API
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)
