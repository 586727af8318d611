"""nuslerp, multislerp, karcher, sce, arcee_fusion, nearswap against numpy formulas written
from each method's description (not from lineage's code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.merge._helpers import merge_one, np64, recipe_for


def _slerp(t, a, b):
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    th = np.arccos(np.clip(cos, -1, 1))
    return (np.sin((1 - t) * th) * a + np.sin(t * th) * b) / np.sin(th)


@pytest.mark.parametrize("row_wise,flatten", [(False, True), (True, False), (False, False)])
def test_nuslerp_slerps_task_vectors_per_row_column_or_whole(pico, row_wise, flatten):
    base, (x0, x1, _) = pico
    data = recipe_for("nuslerp", 2, model_params=[{"weight": 1.0}, {"weight": 3.0}],
                      params={"nuslerp_row_wise": row_wise, "nuslerp_flatten": flatten})
    got = np64(merge_one(data, base, [x0, x1]))
    b, d0, d1 = np64(base), np64(x0) - np64(base), np64(x1) - np64(base)
    t = 3.0 / 4.0
    if flatten:
        want = b + _slerp(t, d0.ravel(), d1.ravel()).reshape(b.shape)
    elif row_wise:
        want = b + np.stack([_slerp(t, d0[i], d1[i]) for i in range(b.shape[0])])
    else:
        want = b + np.stack([_slerp(t, d0[:, j], d1[:, j]) for j in range(b.shape[1])], 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_nuslerp_without_base_interpolates_the_models(pico):
    _, (x0, x1, _) = pico
    data = recipe_for("nuslerp", 2, model_params=[{"weight": 1.0}, {"weight": 1.0}],
                      base=False)
    got = np64(merge_one(data, None, [x0, x1]))
    want = _slerp(0.5, np64(x0).ravel(), np64(x1).ravel()).reshape(x0.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _exp_map(m, v):
    n = np.linalg.norm(v)
    return m if n == 0 else np.cos(n) * m + np.sin(n) * v / n


def test_multislerp_is_the_exponential_map_of_the_weighted_tangent_mean(pico):
    base, tuned = pico
    w = np.array([1.0, 2.0, 1.0])
    data = recipe_for("multislerp", 3, model_params=[{"weight": float(x)} for x in w])
    got = np64(merge_one(data, base, tuned))
    b = np64(base).ravel()
    d = [np64(x).ravel() - b for x in tuned]
    wn = w / w.sum()
    u = [x / np.linalg.norm(x) for x in d]
    m = sum(wi * ui for wi, ui in zip(wn, u, strict=True))
    m /= np.linalg.norm(m)
    tangent = sum(wi * (ui - (ui @ m) * m) for wi, ui in zip(wn, u, strict=True))
    scale = sum(wi * np.linalg.norm(x) for wi, x in zip(wn, d, strict=True))
    want = b + scale * _exp_map(m, tangent)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-5, atol=1e-5)


def test_karcher_mean_minimises_the_sum_of_squared_geodesic_distances(pico):
    _, tuned = pico
    data = recipe_for("karcher", 3, params={"max_iter": 100, "tol": 1e-12}, base=False)
    got = np64(merge_one(data, None, tuned)).ravel()
    xs = [np64(x).ravel() for x in tuned]
    u = [x / np.linalg.norm(x) for x in xs]
    # independent check: the Riemannian gradient sum_i log_m(u_i) vanishes at the mean
    m = got / np.linalg.norm(got)
    grad = np.zeros_like(m)
    for ui in u:
        c = np.clip(ui @ m, -1, 1)
        th = np.arccos(c)
        grad += th / np.sin(th) * (ui - c * m)
    assert np.linalg.norm(grad) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got), np.mean([np.linalg.norm(x) for x in xs]),
                               rtol=1e-6)


@pytest.mark.parametrize("topk", [1.0, 0.5])
def test_sce_select_calculate_erase(pico, topk):
    base, tuned = pico
    data = recipe_for("sce", 3, params={"select_topk": topk})
    got = np64(merge_one(data, base, tuned))
    b = np64(base)
    d = np.stack([np64(x) - b for x in tuned])
    if topk < 1:
        var = d.var(axis=0)
        k = int(topk * np.count_nonzero(var))
        keep = np.zeros(var.size)
        keep[np.argsort(-var.ravel())[:k]] = 1
        d = d * keep.reshape(var.shape)
    energy = (d ** 2).mean(axis=(1, 2))
    coef = energy / energy.sum()
    sign = np.where(d.sum(0) >= 0, 1.0, -1.0)
    agree = (np.sign(d) == sign).astype(float)
    num = (coef[:, None, None] * agree * d).sum(0)
    den = (coef[:, None, None] * agree).sum(0)
    den[den == 0] = 1
    np.testing.assert_allclose(got, b + num / den, rtol=1e-5, atol=1e-6)


def test_arcee_fusion_takes_changes_above_median_plus_1_5_iqr(pico):
    base, (x, _, _) = pico
    x = x.clone()
    x[2] *= 4.0  # one row changes a lot (and its softmax): its entries become important
    got = np64(merge_one(recipe_for("arcee_fusion", 1), base, [x]))
    b, f = np64(base), np64(x)

    def softmax(v):
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p, q = softmax(f) + 1e-8, softmax(b) + 1e-8
    imp = np.abs(f - b) * (p * np.log(p / q)).sum(-1, keepdims=True)
    s = np.sort(imp.ravel())
    q1, med, q3 = (s[int(qq * (s.size - 1))] for qq in (0.25, 0.5, 0.75))
    mask = imp >= med + 1.5 * (q3 - q1)
    assert 0 < mask.sum() < mask.size
    np.testing.assert_allclose(got, np.where(mask, f, b), rtol=1e-6, atol=1e-7)


def test_nearswap_moves_by_threshold_over_gap(pico):
    base, (x, _, _) = pico
    x = x.clone()
    x[0, 0] = base[0, 0]  # an identical entry (gap 0) counts as fully swapped
    got = np64(merge_one(recipe_for("nearswap", 1, params={"t": 0.3}), base, [x]))
    b, f = np64(base), np64(x)
    gap = np.abs(b - f)
    with np.errstate(divide="ignore"):
        lam = np.where(gap == 0, 1.0, np.minimum(1.0, 0.3 / gap))
    np.testing.assert_allclose(got, lam * f + (1 - lam) * b, rtol=1e-6, atol=1e-7)


def test_methods_are_registered_with_their_paper():
    from lineage.merge import REGISTRY

    for name in ("nuslerp", "multislerp", "karcher", "sce", "arcee_fusion", "nearswap",
                 "passthrough"):
        assert REGISTRY[name].paper and REGISTRY[name].url.startswith("https://")
    assert torch.is_tensor(torch.zeros(1))


def test_breadcrumbs_keeps_the_middle_magnitude_band():
    """Selection (kthvalue + topk) == a full sort's rank band [n_bot, n - n_top) when no
    two magnitudes tie."""
    from lineage.merge.sparsify import magnitude_outliers

    g = torch.Generator().manual_seed(7)
    signs = torch.randint(0, 2, (50_000,), generator=g) * 2 - 1
    delta = torch.linspace(1e-3, 1.0, 50_000)[torch.randperm(50_000, generator=g)] * signs
    assert delta.abs().unique().numel() == delta.numel()
    got = magnitude_outliers(delta, 0.3, 0.02).numpy()
    mags = np.abs(delta.numpy())
    order = np.argsort(mags)
    n = mags.size
    n_keep, n_top = int(0.3 * n), int(0.02 * n)
    keep = np.zeros(n, bool)
    keep[order[n - n_keep - n_top: n - n_top]] = True
    np.testing.assert_array_equal(got, np.where(keep, delta.numpy(), 0.0))
