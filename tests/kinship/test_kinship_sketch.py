"""Sketch estimates against exact values on the real zoo; the error is printed (-s)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lineage.fingerprint import fingerprint_model, sketch_tensor
from lineage.kinship import (
    SketchedModel,
    estimate_from_model_sketches,
    estimate_kinship,
    kinship,
)
from lineage.weights import open_model

ALL = "cs,pcc,ed,l2,mother"
PAIRS = [("ft1", "ft2"), ("ft1", "ft1_child"), ("lowrank", "ft1"), ("ft1", "ft2_bf16")]


def _sketched(zoo, width: int) -> dict[str, SketchedModel]:
    keys = ("base", "ft1", "ft2", "ft1_child", "lowrank", "ft2_bf16", "ft1_vocab")
    out = {}
    for key in keys:
        with open_model(zoo[key]) as model:
            out[key] = SketchedModel.from_fingerprint(fingerprint_model(model, width=width), key)
    return out


@pytest.fixture(scope="module")
def exact(zoo):
    return {(a, b): kinship(zoo[a], zoo[b], zoo["base"], metrics=ALL) for a, b in PAIRS}


def test_exact_when_every_tensor_fits_the_width(zoo, exact):
    # The largest zoo tensor has 16384 elements: at that width every sketch is exact.
    sk = _sketched(zoo, 16384)
    for a, b in PAIRS:
        est = estimate_kinship(sk[a], sk[b], sk["base"], metrics=ALL, per_layer=True)
        for name, value in exact[(a, b)].values.items():
            # float32 sketches: agreement to float32 rounding of deltas, not float64.
            assert est.values[name] == pytest.approx(value, rel=1e-4, abs=1e-5), (a, b, name)
        assert est.method == "sketch" and len(est.layers) == 28


@pytest.mark.parametrize("width", [4096, 256])
def test_estimate_error_on_real_models(zoo, exact, width):
    sk = _sketched(zoo, width)
    print(f"\nwidth {width}: estimate - exact (per-tensor sketches | model-level sketch)")
    for a, b in PAIRS:
        ex = exact[(a, b)].values
        est = estimate_kinship(sk[a], sk[b], sk["base"], metrics=ALL).values
        mod = estimate_from_model_sketches(
            sk[a].model_sketch, sk[b].model_sketch, sk["base"].model_sketch
        )
        cs_err, pcc_err = est["cs"] - ex["cs"], est["pcc"] - ex["pcc"]
        ed_rel, mo_rel = est["ed"] / ex["ed"] - 1, est["mother"] / ex["mother"] - 1
        m_cs, m_ed = mod["cs"] - ex["cs"], mod["ed"] / ex["ed"] - 1
        print(
            f"  {a:>8} vs {b:<9} cs {ex['cs']:+.4f} err {cs_err:+.4f}  pcc err {pcc_err:+.4f}"
            f"  ed rel {ed_rel:+.4f}  mother rel {mo_rel:+.4f} | cs err {m_cs:+.4f}"
            f"  ed rel {m_ed:+.4f}"
        )
        # 4 sigma: cosine error <= 1 / sqrt(width), relative norm error 1 / sqrt(2 width).
        cos_bound, norm_bound = 4 / math.sqrt(width), 4 / math.sqrt(2 * width)
        assert max(abs(cs_err), abs(pcc_err), abs(m_cs)) < cos_bound
        assert max(abs(ed_rel), abs(m_ed), abs(mo_rel)) < norm_bound


@pytest.mark.parametrize("cos", [0.0, 0.6, 0.9])
def test_cosine_error_matches_theory_over_many_seeds(cos):
    """A sketched cosine's error is ~ (1 - cos^2) / sqrt(width) (delta method), per tensor."""
    gen = torch.Generator().manual_seed(0)
    n, width, trials = 1 << 15, 512, 40
    errors = []
    for t in range(trials):
        x = torch.randn(n, generator=gen)
        y = cos * x + math.sqrt(1 - cos**2) * torch.randn(n, generator=gen)
        exact = float(x @ y / (x.norm() * y.norm()))
        sx, sy = (sketch_tensor(f"t{t}.weight", v, width).double() for v in (x, y))
        errors.append(float(sx @ sy / (sx.norm() * sy.norm())) - exact)
    spread, theory = float(np.std(errors)), (1 - cos**2) / math.sqrt(width)
    print(f"\ncos {cos}, n {n}, width {width}: error std {spread:.4f}, theory {theory:.4f}")
    assert abs(float(np.mean(errors))) < 4 * theory / math.sqrt(trials)
    assert 0.6 * theory < spread < 1.4 * theory


def test_pcc_needs_means(zoo):
    sk = _sketched(zoo, 4096)
    bare = {k: SketchedModel(k, m.sketches, m.shapes) for k, m in sk.items()}
    est = estimate_kinship(bare["ft1"], bare["ft2"], bare["base"], metrics="cs,pcc", per_layer=True)
    assert math.isnan(est.values["pcc"]) and not math.isnan(est.values["cs"])
    assert all(layer.values["pcc"] is None for layer in est.layers)
    assert any("pcc needs per-tensor means" in note for note in est.notes)


def test_vocabulary_mismatch_is_skipped_from_sketches(zoo):
    sk = _sketched(zoo, 4096)
    est = estimate_kinship(sk["ft1_vocab"], sk["ft2"], sk["base"])
    reasons = dict(est.skipped)
    assert reasons["transformer.wte.weight"] == "shapes differ: their sketches are not comparable"
    assert est.n_tensors == 27
    assert not any("compared the first" in note for note in est.notes)
