"""Fingerprints against independent numpy/scipy computations."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.stats
import torch

from lineage.fingerprint import (
    content_hash,
    fingerprint_model,
    sketch_tensor,
    tensor_moments,
)
from lineage.fingerprint.moments import CHUNK
from lineage.weights import open_model


@pytest.mark.parametrize(
    "make",
    [
        lambda g: torch.randn(1000, 37, generator=g),
        lambda g: 1.0 + 0.001 * torch.randn(CHUNK * 2 + 17, generator=g),  # |mean| >> std
        lambda g: torch.rand(3, CHUNK + 5, generator=g) ** 3,  # skewed, heavy tail
        lambda g: torch.randn(5000, generator=g).half(),
        lambda g: torch.randint(-50, 50, (777,), generator=g, dtype=torch.int32),
    ],
)
def test_moments_match_numpy(make):
    tensor = make(torch.Generator().manual_seed(0))
    values = tensor.double().numpy().ravel()
    m = tensor_moments(tensor)
    assert m.n == values.size
    assert m.mean == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
    assert m.std == pytest.approx(values.std(), rel=1e-9)
    assert m.kurtosis == pytest.approx(scipy.stats.kurtosis(values), rel=1e-7, abs=1e-9)
    assert (m.min, m.max) == (values.min(), values.max())


def test_constant_tensor_has_nan_kurtosis_and_zero_std():
    m = tensor_moments(torch.full((10,), 3.0))
    assert m.std == 0.0 and np.isnan(m.kurtosis) and m.mean == 3.0


def test_content_hash_is_sha256_of_dtype_shape_and_bytes():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    raw = t.numpy().tobytes()
    expected = hashlib.sha256(b"F32|[3, 4]|" + raw).hexdigest()[:32]
    assert content_hash("F32", (3, 4), raw) == expected
    assert content_hash("F32", (4, 3), raw) != expected
    assert content_hash("I32", (3, 4), raw) != expected


def test_sketch_is_linear_and_deterministic():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 200, generator=g), torch.randn(300, 200, generator=g)
    sa, sb = sketch_tensor("w", a), sketch_tensor("w", b)
    assert torch.allclose(sketch_tensor("w", a - b), sa - sb, atol=1e-4)
    assert torch.allclose(sketch_tensor("w", 2.5 * a), 2.5 * sa, atol=1e-4)
    assert torch.equal(sketch_tensor("w", a), sa)
    assert not torch.equal(sketch_tensor("other-name", a), sa)  # seeded by the name


def test_sketch_is_exact_for_tensors_no_wider_than_the_sketch():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(64, 64, generator=g), torch.randn(64, 64, generator=g)
    sa, sb = sketch_tensor("w", a).double(), sketch_tensor("w", b).double()
    assert sa.numel() == 4096
    assert float(sa @ sb) == pytest.approx(float((a.double() * b.double()).sum()), rel=1e-5)
    assert float(sa.norm()) == pytest.approx(float(a.double().norm()), rel=1e-6)


def test_sketch_inner_products_are_unbiased():
    """Averaged over independent sketches (different names), the estimate converges."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(20000, generator=g)
    b = 0.6 * a + 0.8 * torch.randn(20000, generator=g)
    exact = float(a.double() @ b.double())
    estimates = [
        float(
            sketch_tensor(f"t{i}", a, width=256).double()
            @ sketch_tensor(f"t{i}", b, width=256).double()
        )
        for i in range(300)
    ]
    spread = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - exact) < 4 * spread
    assert spread > 0  # the estimates do vary: this is a real random sketch


def _trained_pair(seed_a: int, seed_b: int):
    """A tiny GPT-2 and two children fine-tuned on different random token streams."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=96, n_layer=1, n_head=2, vocab_size=128, n_positions=16)
    base = GPT2LMHeadModel(config)
    children = []
    for seed in (seed_a, seed_b):
        child = GPT2LMHeadModel(config)
        child.load_state_dict(base.state_dict())
        opt = torch.optim.SGD(child.parameters(), lr=0.5)
        gen = torch.Generator().manual_seed(seed)
        shared = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(9))
        for _ in range(5):
            own = torch.randint(0, 128, (8, 16), generator=gen)
            batch = torch.cat([shared, own])
            loss = child(input_ids=batch, labels=batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        children.append(child.state_dict())
    return base.state_dict(), children


# Documented in the README: at the default width 4096, the cosine of real fine-tuning
# deltas is estimated within this absolute error per large tensor.
COSINE_TOLERANCE = 0.05


def test_sketch_cosine_error_on_real_fine_tuning_deltas():
    base, (a, b) = _trained_pair(1, 2)
    errors = []
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"):
        da, db = a[name] - base[name], b[name] - base[name]
        assert da.numel() > 4096  # a real sketch, not the exact small-tensor case
        exact = float(
            torch.nn.functional.cosine_similarity(
                da.reshape(1, -1).double(), db.reshape(1, -1).double()
            )
        )
        sa = sketch_tensor(name, a[name]) - sketch_tensor(name, base[name])
        sb = sketch_tensor(name, b[name]) - sketch_tensor(name, base[name])
        estimate = float(
            torch.nn.functional.cosine_similarity(
                sa.reshape(1, -1).double(), sb.reshape(1, -1).double()
            )
        )
        errors.append(abs(estimate - exact))
        assert abs(exact) > 0.05  # the deltas are related: a meaningful cosine to estimate
    assert max(errors) < COSINE_TOLERANCE


def test_fingerprint_model_matches_numpy_per_tensor(models_dir):
    with open_model(models_dir / "org/gpt2") as model:
        fp = fingerprint_model(model)
        assert [t.name for t in fp.tensors] == model.names()
        for t in fp.tensors:
            values = model.tensor(t.name).double().numpy().ravel()
            assert t.numel == values.size
            assert t.mean == pytest.approx(values.mean(), abs=1e-12)
            if values.std() > 0:
                assert t.kurtosis == pytest.approx(scipy.stats.kurtosis(values), rel=1e-6)
            assert t.content_hash == content_hash(t.dtype, t.shape, bytes(model.raw(t.name)))
        assert fp.sketch.shape == (4096,)
        # The model sketch estimates the total squared norm without bias (tensors collide).
        total = sum(float((model.tensor(n).double() ** 2).sum()) for n in model.names())
        assert float((fp.sketch.astype(np.float64) ** 2).sum()) == pytest.approx(total, rel=0.25)
