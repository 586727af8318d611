"""The recovery evidence of the fingerprint: the two-sided rank sketch Y = L W R and the
coordinate sample, on real matrices (float32, bfloat16), checked against the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.fingerprint import (
    EvidenceOptions,
    fingerprint_model,
    rank_sketch,
    rank_sketch_shape,
    sample_positions,
    sample_values,
)
from lineage.recovery.rank import noise_tolerance, weight_rank
from lineage.weights import open_model, write_safetensors

U32, U16B = 2.0**-24, 2.0**-8


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sketch(w: torch.Tensor) -> np.ndarray:
    return rank_sketch(w).astype(np.float64).reshape(rank_sketch_shape(tuple(w.shape)))


def _sketch_rank(a: torch.Tensor, b: torch.Tensor, u: float) -> int:
    """Rank of Y(a) - Y(b) with recovery's tolerance (rank.sketch_rank's formula)."""
    ya, yb = _sketch(a), _sketch(b)
    energy = (u**2 * (float(a.double().square().sum()) + float(b.double().square().sum()))
              + U32**2 * (float((ya**2).sum()) + float((yb**2).sum()))) / 3.0
    s = np.linalg.svd(ya - yb, compute_uv=False)
    return int((s > noise_tolerance(*ya.shape, energy)).sum())


@pytest.mark.parametrize("shape", [(96, 300), (300, 96), (200, 200), (40, 300), (300, 40),
                                   (48, 30)])
def test_the_sketch_is_linear_in_the_matrix(shape):
    a, b = torch.randn(*shape, generator=_gen(0)), torch.randn(*shape, generator=_gen(1))
    ya, yb, ysum = _sketch(a), _sketch(b), _sketch(a + b)
    assert ysum.shape == rank_sketch_shape(shape)
    np.testing.assert_allclose(ysum, ya + yb, rtol=0, atol=1e-4 * np.abs(ysum).max())


def test_a_matrix_within_the_sketch_width_is_kept_as_itself():
    w = torch.randn(48, 30, generator=_gen(2))
    np.testing.assert_array_equal(_sketch(w), w.numpy().astype(np.float64))


@pytest.mark.parametrize("shape", [(128, 512), (512, 128), (256, 256), (40, 512)])
@pytest.mark.parametrize("rank", [1, 4, 16, 40])
def test_a_low_rank_change_keeps_its_rank_in_the_sketch(shape, rank):
    m, n = shape
    w = 0.02 * torch.randn(m, n, generator=_gen(3))
    delta = torch.randn(m, rank, generator=_gen(4)) @ torch.randn(rank, n, generator=_gen(5))
    child = (w.double() + 1e-3 * delta.double()).float()  # a merged LoRA, stored as F32
    expected = weight_rank(child.double().numpy(), w.double().numpy(), U32, U32)
    assert expected == min(rank, m)
    assert _sketch_rank(child, w, U32) == expected


def test_a_full_fine_tune_fills_the_sketch():
    w = 0.02 * torch.randn(256, 512, generator=_gen(6))
    child = w + 1e-4 * torch.randn(256, 512, generator=_gen(7))
    assert _sketch_rank(child, w, U32) == 64
    assert _sketch_rank(w.clone(), w, U32) == 0  # identical weights: no rank at all


def test_bfloat16_rounding_is_not_read_as_rank():
    # A LoRA merged in float32 and stored as bfloat16: the rounding is full rank, but
    # below the tolerance derived from bfloat16's unit roundoff; the change is not.
    w = (0.02 * torch.randn(256, 512, generator=_gen(8))).bfloat16()
    delta = torch.randn(256, 8, generator=_gen(9)) @ torch.randn(8, 512, generator=_gen(10))
    child = (w.double() + 2e-3 * delta.double()).bfloat16()
    assert weight_rank(child.double().numpy(), w.double().numpy(), U16B, U16B) == 8
    assert _sketch_rank(child, w, U16B) == 8


def test_sample_positions_are_shared_by_name_and_shape_and_values_are_exact():
    w = torch.randn(300, 200, generator=_gen(11)).bfloat16()
    pos = sample_positions("layers.0.q.weight", (300, 200))
    assert torch.equal(pos, sample_positions("layers.0.q.weight", (300, 200)))
    assert not torch.equal(pos, sample_positions("layers.1.q.weight", (300, 200)))
    assert pos.numel() == 4096 and bool((pos[1:] > pos[:-1]).all())  # distinct, sorted
    values = sample_values("layers.0.q.weight", w)
    np.testing.assert_array_equal(values, w.reshape(-1)[pos].float().numpy())  # bit-exact
    assert sample_positions("small", (30, 40)).numel() == 1200  # every coordinate


def test_fingerprint_carries_evidence_for_matrices_only(tmp_path):
    tensors = {"a.weight": torch.randn(64, 96, generator=_gen(12)),
               "a.bias": torch.randn(64, generator=_gen(13)),
               "ids": torch.arange(12).reshape(3, 4)}
    path = write_safetensors(tmp_path / "m.safetensors", tensors)
    with open_model(path) as model:
        fp = {t.name: t for t in fingerprint_model(model).tensors}
        plain = {t.name: t for t in fingerprint_model(
            model, evidence=EvidenceOptions(enabled=False)).tensors}
    assert fp["a.weight"].rank_sketch.shape == (64 * 64,) and fp["a.weight"].rank_width == 64
    assert fp["a.weight"].sample.shape == (4096,) and fp["a.weight"].sample_size == 4096
    assert fp["a.bias"].rank_sketch is None and fp["a.bias"].sample is None
    assert fp["ids"].rank_sketch is None  # integers are not weights
    assert plain["a.weight"].rank_sketch is None and plain["a.weight"].sample is None
    np.testing.assert_array_equal(fp["a.weight"].sketch, plain["a.weight"].sketch)
