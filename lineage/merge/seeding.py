"""Deterministic per-tensor seeds.

Randomized merges (DARE, DELLA) must give the same output for the same recipe on any
machine and in any process, and must draw *different* masks for different tensors.
Python's built-in ``hash()`` is salted per process, so seeds come from a stable hash
(BLAKE2b) of the global seed and the tensor name instead.
"""

from __future__ import annotations

import hashlib

import torch


def tensor_seed(seed: int, name: str, *parts: object) -> int:
    """A 63-bit seed derived from the global ``seed``, a tensor ``name`` and extra parts.

    Extra parts (e.g. the index of the model within the recipe) give each model its
    own independent random stream for the same tensor.
    """
    text = "\x1f".join([str(int(seed)), name, *(str(p) for p in parts)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, name: str, *parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`tensor_seed`."""
    g = torch.Generator(device="cpu")
    g.manual_seed(tensor_seed(seed, name, *parts))
    return g
