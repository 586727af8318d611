"""Linear, Fisher, SLERP, model stock, UBGM, TALL masks, consensus: numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.merge import REGISTRY
from tests.merge._helpers import merge_one, np64, recipe_for


def test_linear_is_the_normalized_weighted_average(pico):
    base, tuned = pico
    w = [0.2, 0.3, 0.5]
    out = merge_one(recipe_for("linear", 3, model_params=[{"weight": x} for x in w],
                               base=False), None, tuned)
    want = sum(x * np64(t) for x, t in zip(w, tuned, strict=True)) / sum(w)
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)
    raw = merge_one(recipe_for("linear", 3, params={"normalize": False, "weight": 2.0},
                               base=False), None, tuned)
    np.testing.assert_allclose(np64(raw), 2 * sum(np64(t) for t in tuned), rtol=1e-5)


def test_fisher_average_weights_each_parameter_by_its_fisher(pico):
    _, tuned = pico
    g = torch.Generator().manual_seed(5)
    fishers = [torch.rand(6, 5, generator=g) for _ in tuned]
    w = [1.0, 2.0, 0.5]
    data = recipe_for("fisher", 3, base=False,
                      model_params=[{"weight": x, "fisher": f"f{i}"} for i, x in enumerate(w)])
    out = merge_one(data, None, tuned, fisher=fishers)
    f = [np64(x) + 1e-6 for x in fishers]
    num = sum(wi * fi * np64(t) for wi, fi, t in zip(w, f, tuned, strict=True))
    den = sum(wi * fi for wi, fi in zip(w, f, strict=True))
    np.testing.assert_allclose(np64(out), num / den, rtol=1e-5, atol=1e-6)
    zero = merge_one(data, None, tuned, fisher=[torch.zeros(6, 5)] * 3)
    want = sum(wi * np64(t) for wi, t in zip(w, tuned, strict=True)) / sum(w)
    np.testing.assert_allclose(np64(zero), want, rtol=1e-5, atol=1e-6)


def np_slerp(t, v0, v1):
    a, b = v0.ravel(), v1.ravel()
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(cos)
    return (np.sin((1 - t) * omega) * v0 + np.sin(t * omega) * v1) / np.sin(omega)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_slerp_follows_the_great_circle_and_hits_the_endpoints(pico, t):
    base, tuned = pico
    other = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    out = merge_one(recipe_for("slerp", 1, params={"t": t}), base, [other])
    np.testing.assert_allclose(np64(out), np_slerp(t, np64(base), np64(other)),
                               rtol=1e-5, atol=1e-5)
    if t in (0.0, 1.0):
        torch.testing.assert_close(out, base if t == 0 else other, rtol=1e-5, atol=1e-5)


def test_slerp_of_colinear_tensors_is_lerp(pico):
    base, _ = pico
    out = merge_one(recipe_for("slerp", 1, params={"t": 0.25}), base, [3 * base])
    torch.testing.assert_close(out, 0.75 * base + 0.25 * 3 * base)


def np_model_stock(base, tuned):
    taus = [(t - base).ravel() for t in tuned]
    cos = [a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
           for i, a in enumerate(taus) for b in taus[i + 1:]]
    c, n = np.mean(cos), len(tuned)
    t = n * c / (1 + (n - 1) * c)
    return t * np.mean(tuned, axis=0) + (1 - t) * base


def test_model_stock_interpolates_average_and_base_by_the_cosine_ratio(pico):
    base, _ = pico
    g = torch.Generator().manual_seed(9)
    shared = torch.randn(6, 5, generator=g)  # correlated task vectors: cos > 0
    tuned = [base + shared + 0.7 * torch.randn(6, 5, generator=g) for _ in range(3)]
    out = merge_one(recipe_for("model_stock", 3), base, tuned)
    np.testing.assert_allclose(np64(out), np_model_stock(np64(base), [np64(t) for t in tuned]),
                               rtol=1e-5, atol=1e-5)


def test_model_stock_filter_wise_uses_one_ratio_per_row(pico):
    base, _ = pico
    g = torch.Generator().manual_seed(10)
    shared = torch.randn(6, 5, generator=g)
    tuned = [base + shared + 0.5 * torch.randn(6, 5, generator=g) for _ in range(2)]
    out = merge_one(recipe_for("model_stock", 2, params={"filter_wise": True}), base, tuned)
    b, ts = np64(base), [np64(t) for t in tuned]
    want = np.stack([np_model_stock(b[r], [t[r] for t in ts]) for r in range(6)])
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-5)


def np_ubgm(b, ts, hs, s, h0, s0, a, delta0):
    den = s0 * h0 + a * sum(si * hi for si, hi in zip(s, hs, strict=True)) + delta0
    return b + a * sum((si * hi + s0 * h0 + delta0) / den * (t - b)
                       for si, hi, t in zip(s, hs, ts, strict=True))


def test_ubgm_matches_the_per_parameter_formula(pico):
    base, tuned = pico
    g = torch.Generator().manual_seed(11)
    hs = [torch.rand(6, 5, generator=g) for _ in tuned]
    h0 = torch.rand(6, 5, generator=g)
    sizes, a = [100.0, 50.0, 10.0], 0.6
    data = recipe_for("ubgm", 3, params={"lambda": a, "delta0": 1e-3},
                      model_params=[{"fisher": f"f{i}", "size": s} for i, s in enumerate(sizes)])
    out = merge_one(data, base, tuned, fisher=hs, base_fisher=h0, base_size=20.0)
    want = np_ubgm(np64(base), [np64(t) for t in tuned], [np64(h) for h in hs], sizes,
                   np64(h0), 20.0, a, 1e-3)
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)


def test_ubgm_with_zero_fisher_is_exactly_task_arithmetic(pico):
    base, tuned = pico
    data = recipe_for("ubgm", 3, params={"lambda": 0.4, "fisher": "f"})
    out = merge_one(data, base, tuned, fisher=[torch.zeros(6, 5)] * 3)
    ta = merge_one(recipe_for("task_arithmetic", 3, params={"lambda": 0.4, "weight": 1.0}),
                   base, tuned)
    torch.testing.assert_close(out, ta, rtol=1e-6, atol=1e-6)


def np_tall_masks(b, ts, lam):
    taus = [t - b for t in ts]
    mtl = sum(taus)
    return mtl, [np.abs(tau) >= lam * np.abs(mtl - tau) for tau in taus]


def test_tall_mask_reconstructs_theta0_plus_mask_times_multitask_vector(pico):
    base, tuned = pico
    b, ts = np64(base), [np64(t) for t in tuned]
    mtl, ms = np_tall_masks(b, ts, 0.3)
    for task in range(3):
        out = merge_one(recipe_for("tall_mask", 3, params={"task": task, "lam": 0.3}),
                        base, tuned)
        np.testing.assert_allclose(np64(out), b + ms[task] * mtl, rtol=1e-5, atol=1e-6)
    by_name = merge_one(recipe_for("tall_mask", 3, params={"task": "m1", "lam": 0.3}),
                        base, tuned)
    np.testing.assert_allclose(np64(by_name), b + ms[1] * mtl, rtol=1e-5, atol=1e-6)


def test_consensus_ta_keeps_weights_active_in_k_masks(pico):
    base, tuned = pico
    b, ts = np64(base), [np64(t) for t in tuned]
    _, ms = np_tall_masks(b, ts, 0.5)
    keep = np.sum(ms, axis=0) >= 2
    out = merge_one(recipe_for("consensus_ta", 3, params={"lam": 0.5, "lambda": 0.8}),
                    base, tuned)
    want = b + 0.8 * sum((t - b) * keep for t in ts)
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)
    assert 0 < keep.mean() < 1  # the test exercises both kept and pruned weights


def test_consensus_ties_prunes_then_applies_ties(pico):
    base, tuned = pico
    from tests.merge.test_task_arithmetic import np_ties_combine, np_trim

    b, ts = np64(base), [np64(t) for t in tuned]
    taus = [t - b for t in ts]
    mtl = np_ties_combine([np_trim(x, 0.6) for x in taus], [1, 1, 1], True)
    ms = [np.abs(x) >= 0.4 * np.abs(mtl - x) for x in taus]
    keep = np.sum(ms, axis=0) >= 2
    pruned = [x * keep for x in taus]
    want = b + np_ties_combine([np_trim(x, 0.6) for x in pruned], [1, 1, 1], True)
    out = merge_one(recipe_for("consensus_ties", 3, params={"density": 0.6}), base, tuned)
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)


def test_every_method_names_its_paper_and_url():
    for m in REGISTRY.values():
        assert m.paper and m.url.startswith("https://"), m.name
