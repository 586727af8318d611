"""Diagonal Fisher estimation, the per-parameter uncertainty used by Fisher-weighted
averaging (Matena & Raffel 2022) and UBGM (Daheim et al. 2024).

    F = mean over examples x of  g(x, y)^2,   g = d log p(y | x, theta) / d theta

with y sampled from the model's own predictive distribution (``kind="sampled"``, the true
Fisher) or the dataset's label (``kind="empirical"``). Gradients are per example (each
batch is split into examples of batch size 1), since squaring a batch-mean gradient would
estimate something else.

Batches are either ``(inputs, labels)`` pairs for a classifier whose output is logits
[B, C], or dicts of model keyword arguments (``input_ids``, ``attention_mask``,
optional ``labels``) for a causal LM whose output is logits [B, T, V] (or has
``.logits``). For an LM every position t predicts token t+1 (labels default to the input
ids; -100 and masked positions are ignored) and an example's log-likelihood is the sum
over its tokens, with sampled labels drawn per token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from lineage.errors import SpecError, UnknownNameError
from lineage.weights import write_safetensors

KINDS = ("sampled", "empirical")


def _examples(batch: Any) -> Iterator[tuple[Any, torch.Tensor | None]]:
    """Split a batch into (model input, labels) examples of batch size 1."""
    if isinstance(batch, Mapping):
        kwargs = {k: v for k, v in batch.items() if k != "labels"}
        labels = batch.get("labels")
        n = len(next(iter(kwargs.values())))
        for i in range(n):
            one = {k: v[i : i + 1] if torch.is_tensor(v) else v for k, v in kwargs.items()}
            yield one, labels[i : i + 1] if labels is not None else None
    else:
        inputs, labels = batch if isinstance(batch, tuple | list) else (batch, None)
        for i in range(len(inputs)):
            yield inputs[i : i + 1], labels[i : i + 1] if labels is not None else None


def _logits(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return out.logits if hasattr(out, "logits") else out


def _log_likelihood(logits, inputs, labels, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Scalar log p(y | x) of one example; y sampled from the model when kind="sampled"."""
    if logits.dim() == 3:  # causal LM: [1, T, V], position t predicts token t + 1
        if labels is None:
            labels = inputs["input_ids"] if isinstance(inputs, Mapping) else inputs
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        target = labels[:, 1:]
        valid = target != -100
        if isinstance(inputs, Mapping) and "attention_mask" in inputs:
            valid &= inputs["attention_mask"][:, 1:].bool()
    else:  # classifier: [1, C]
        logp = torch.log_softmax(logits.float(), dim=-1)
        target, valid = labels, None
    if kind == "sampled":
        probs = logp.detach().exp().reshape(-1, logp.shape[-1])
        target = torch.multinomial(probs, 1, generator=gen).reshape(logp.shape[:-1])
    elif target is None:
        raise SpecError("empirical Fisher", "the batches carry no labels",
                        "Give (inputs, labels) batches or use kind='sampled'")
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked[valid].sum() if valid is not None else picked.sum()


def estimate_fisher(
    model: torch.nn.Module,
    batches: Iterable[Any],
    *,
    kind: str = "sampled",
    n_samples: int | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of ``model``'s parameters over up to ``n_samples`` examples.

    Returns float32 tensors keyed like ``model.state_dict()`` (parameters only; tied
    parameters appear under each of their names; frozen ones are zero), each the shape of
    its parameter. ``seed`` makes the sampled labels reproducible.
    """
    if kind not in KINDS:
        raise UnknownNameError.of("Fisher kind", kind, KINDS)
    named = dict(model.named_parameters(remove_duplicate=False))
    params = list(dict.fromkeys(p for p in named.values() if p.requires_grad))
    sums = {id(p): torch.zeros(p.shape, dtype=torch.float32) for p in params}
    gen = torch.Generator().manual_seed(seed)
    was_training, count = model.training, 0
    model.eval()  # no dropout: the Fisher of the deterministic predictor
    try:
        for batch in batches:
            for inputs, labels in _examples(batch):
                if n_samples is not None and count >= n_samples:
                    break
                ll = _log_likelihood(_logits(model, inputs), inputs, labels, kind, gen)
                grads = torch.autograd.grad(ll, params, allow_unused=True)
                for p, g in zip(params, grads, strict=True):
                    if g is not None:
                        sums[id(p)] += g.detach().float().cpu() ** 2
                count += 1
            if n_samples is not None and count >= n_samples:
                break
    finally:
        model.train(was_training)
    if count == 0:
        raise SpecError("Fisher estimation", "received no examples", "Pass non-empty batches")
    return {name: (sums[id(p)] / count).clone() if id(p) in sums
            else torch.zeros(p.shape, dtype=torch.float32) for name, p in named.items()}


def save_fisher(fisher: Mapping[str, torch.Tensor], path: str | Path, *,
                kind: str = "sampled", n_examples: int | None = None) -> Path:
    """Write a Fisher dict as safetensors (atomically), names as in the model state dict;
    ``kind`` and ``n_examples`` (the UBGM ``size``) go into the file's metadata."""
    meta = {"lineage": "fisher", "kind": kind}
    if n_examples is not None:
        meta["n_examples"] = str(n_examples)
    return write_safetensors(path, {k: v.contiguous() for k, v in fisher.items()}, meta)
