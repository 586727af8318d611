"""SLERP on embedding-sized tensors: the angle must come from float64 sums.

A float32 sum of 20M squares drifts by ~0.3%, which turned a true cosine of ~0.998 into
one above mergekit's colinearity threshold (0.9995) and silently made SLERP linear.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.merge.slerp import DOT_THRESHOLD, slerp, slerp_cosine


@pytest.fixture(scope="module")
def embedding_pair():
    """Two 20M-entry tensors (an embedding matrix and a fine-tune of it), fixed seed."""
    g = torch.Generator().manual_seed(0)
    v0 = torch.randn(20_000, 1_000, generator=g) * 0.02 + 0.01
    v1 = v0 + 0.0012 * torch.randn(20_000, 1_000, generator=g)
    return v0, v1


def _numpy_cos(v0: torch.Tensor, v1: torch.Tensor) -> float:
    a = v0.numpy().reshape(-1).astype(np.float64)
    b = v1.numpy().reshape(-1).astype(np.float64)
    return float(a @ b / (np.sqrt(a @ a) * np.sqrt(b @ b)))


def test_cosine_of_a_large_tensor_is_exact(embedding_pair):
    v0, v1 = embedding_pair
    want = _numpy_cos(v0, v1)
    assert want < DOT_THRESHOLD  # truly not colinear: SLERP must not fall back to lerp
    assert slerp_cosine(v0, v1) == pytest.approx(want, abs=1e-9)


def test_large_slerp_matches_float64_formula(embedding_pair):
    v0, v1 = embedding_pair
    t = 0.3
    cos = _numpy_cos(v0, v1)
    theta = np.arccos(cos)
    s0, s1 = np.sin((1 - t) * theta) / np.sin(theta), np.sin(t * theta) / np.sin(theta)
    out = slerp(v0, [v1], t=t)
    # Compare on a slice (the formula is elementwise once s0, s1 are known).
    a, b = v0[:500].double().numpy(), v1[:500].double().numpy()
    want = s0 * a + s1 * b
    lerp = (1 - t) * a + t * b
    got = out[:500].double().numpy()
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(want - lerp).max() > 1e-5  # a lerp fallback would be caught


def test_colinear_tensors_fall_back_to_lerp_as_mergekit_documents():
    """mergekit: |cos| > 0.9995 -> linear interpolation (SLERP is ill-conditioned there)."""
    g = torch.Generator().manual_seed(1)
    v0 = torch.randn(1000, generator=g)
    v1 = 2.0 * v0 + 1e-4 * torch.randn(1000, generator=g)
    assert slerp_cosine(v0, v1) > DOT_THRESHOLD
    out = slerp(v0, [v1], t=0.25)
    torch.testing.assert_close(out, 0.75 * v0 + 0.25 * v1)
    anti = slerp(v0, [-v0], t=0.5)
    torch.testing.assert_close(anti, torch.zeros_like(v0))
