"""Task arithmetic, TIES, DARE, breadcrumbs, DELLA against independent numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.merge._helpers import merge_one, np64, recipe_for


def np_trim(d: np.ndarray, density: float) -> np.ndarray:
    """TIES trim: keep the int(density * n) largest |d|."""
    flat = d.ravel().copy()
    k = int(density * flat.size)
    keep = np.argsort(-np.abs(flat))[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(d.shape)


def np_ties_combine(deltas: list[np.ndarray], w: list[float], normalize: bool) -> np.ndarray:
    wd = np.stack([wi * d for wi, d in zip(w, deltas, strict=True)])
    elected = np.where(wd.sum(0) >= 0, 1.0, -1.0)
    agree = np.sign(wd) == elected
    mixed = (wd * agree).sum(0)
    div = (np.array(w)[:, None, None] * agree).sum(0)
    div[div == 0] = 1
    return mixed / div if normalize else mixed


def test_task_arithmetic_is_base_plus_scaled_weighted_task_vectors(pico):
    base, tuned = pico
    w, lam = [1.0, 0.5, -0.25], 0.7
    out = merge_one(recipe_for("task_arithmetic", 3, params={"lambda": lam},
                               model_params=[{"weight": x} for x in w]), base, tuned)
    b = np64(base)
    want = b + lam * sum(wi * (np64(x) - b) for wi, x in zip(w, tuned, strict=True))
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)


def test_ties_trims_elects_sign_and_takes_disjoint_mean(pico):
    base, tuned = pico
    w, dens, lam = [1.0, 0.6, 0.9], [0.5, 0.3, 0.7], 1.3
    out = merge_one(recipe_for("ties", 3, params={"lambda": lam},
                               model_params=[{"weight": a, "density": d}
                                             for a, d in zip(w, dens, strict=True)]),
                    base, tuned)
    b = np64(base)
    trimmed = [np_trim(np64(x) - b, d) for x, d in zip(tuned, dens, strict=True)]
    want = b + lam * np_ties_combine(trimmed, w, normalize=True)
    np.testing.assert_allclose(np64(out), want, rtol=1e-5, atol=1e-6)


def test_ties_normalize_false_keeps_the_weighted_sum_of_agreeing_entries(pico):
    base, tuned = pico
    out = merge_one(recipe_for("ties", 2, params={"normalize": False, "density": 0.4,
                                                  "weight": 1.0}), base, tuned[:2])
    b = np64(base)
    trimmed = [np_trim(np64(x) - b, 0.4) for x in tuned[:2]]
    np.testing.assert_allclose(np64(out), b + np_ties_combine(trimmed, [1, 1], False),
                               rtol=1e-5, atol=1e-6)


def test_ties_with_density_one_and_one_model_is_task_arithmetic(pico):
    base, tuned = pico
    ties = merge_one(recipe_for("ties", 1, params={"weight": 1.0, "lambda": 0.8}),
                     base, tuned[:1])
    ta = merge_one(recipe_for("task_arithmetic", 1, params={"weight": 1.0, "lambda": 0.8}),
                   base, tuned[:1])
    torch.testing.assert_close(ties, ta)


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_with_density_one_is_task_arithmetic_or_ties(pico, method):
    base, tuned = pico
    weights = [{"weight": 1.0}, {"weight": 0.5}]
    dare = merge_one(recipe_for(method, 2, params={"density": 1.0}, model_params=weights),
                     base, tuned[:2])
    ref = "task_arithmetic" if method == "dare_linear" else "ties"
    want = merge_one(recipe_for(ref, 2, params={"normalize": False}, model_params=weights),
                     base, tuned[:2])
    torch.testing.assert_close(dare, want)


def test_dare_drops_at_random_and_rescales_to_the_l1_norm():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 50, generator=g)
    tuned = base + torch.randn(200, 50, generator=g)
    out = merge_one(recipe_for("dare_linear", 1, params={"weight": 1.0, "density": 0.3}),
                    base, [tuned])
    d, o = np64(tuned) - np64(base), np64(out) - np64(base)
    kept = o != 0
    assert abs(kept.mean() - 0.3) < 0.02  # Bernoulli(0.3) over 10k entries
    scale = np.abs(d).sum() / np.abs(d[kept]).sum()  # mergekit rescale: match the L1 norm
    np.testing.assert_allclose(o[kept], d[kept] * scale, rtol=1e-4)


def test_dare_inverse_density_rescale_is_the_papers_one_over_p():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(30, 30, generator=g)
    tuned = base + torch.randn(30, 30, generator=g)
    params = {"weight": 1.0, "density": 0.5, "rescale_norm": "inverse_density"}
    out = merge_one(recipe_for("dare_linear", 1, params=params), base, [tuned])
    d, o = np64(tuned) - np64(base), np64(out) - np64(base)
    kept = o != 0
    np.testing.assert_allclose(o[kept], d[kept] / 0.5, rtol=1e-5)


def test_breadcrumbs_drops_outliers_and_small_entries(pico):
    base, tuned = pico
    params = {"weight": 1.0, "density": 0.5, "gamma": 0.1}
    out = merge_one(recipe_for("breadcrumbs", 1, params=params), base, tuned[:1])
    d = (np64(tuned[0]) - np64(base)).ravel()
    n = d.size  # 30: keep int(0.5*30) = 15, drop top int(0.1*30) = 3 and bottom 12
    order = np.argsort(np.abs(d), kind="stable")
    keep = np.zeros(n, bool)
    keep[order[12 : n - 3]] = True
    want = np64(base).ravel() + np.where(keep, d, 0)
    np.testing.assert_allclose(np64(out).ravel(), want, rtol=1e-5, atol=1e-6)


def test_della_keeps_larger_entries_more_often():
    g = torch.Generator().manual_seed(2)
    base = torch.zeros(400, 40)
    # Every row holds magnitudes 1..40: rank and magnitude coincide.
    tuned = torch.arange(1, 41, dtype=torch.float32).repeat(400, 1)
    tuned = tuned[:, torch.randperm(40, generator=g)]
    params = {"weight": 1.0, "density": 0.5, "epsilon": 0.4, "rescale": False}
    out = merge_one(recipe_for("della_linear", 1, params=params), base, [tuned])
    kept = (np64(out) != 0)
    mags = np64(tuned)
    small, large = kept[mags <= 5].mean(), kept[mags >= 36].mean()
    # p = 0.1 + 0.8 * rank / 39: about 0.15 for the 5 smallest, 0.85 for the 5 largest
    assert small < 0.25 and large > 0.75
    np.testing.assert_array_equal(np64(out)[kept], mags[kept])


def test_random_masks_are_deterministic_per_seed_and_differ_per_tensor_name(pico):
    base, tuned = pico
    data = recipe_for("dare_ties", 3, params={"weight": 1.0, "density": 0.5}, seed=7)
    a = merge_one(data, base, tuned, name="x.weight")
    b = merge_one(data, base, tuned, name="x.weight")
    c = merge_one(data, base, tuned, name="y.weight")
    d = merge_one({**data, "seed": 8}, base, tuned, name="x.weight")
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, d)


def test_seed_is_stable_across_processes():
    # A stable hash (BLAKE2b), not Python's per-process salted hash(): pinned value.
    from lineage.merge.seeding import tensor_seed

    assert tensor_seed(0, "model.layers.0.mlp.up_proj.weight") == 7010944633785115251
    assert len({tensor_seed(0, "a"), tensor_seed(0, "b"), tensor_seed(1, "a")}) == 3


def test_output_dtype_is_the_requested_one(pico):
    base, tuned = pico
    from lineage.merge import Recipe, merge_tensor

    plan = Recipe.from_dict(recipe_for("task_arithmetic", 1, params={"weight": 1.0})).plan()
    out = merge_tensor(plan.method, "w", base.to(torch.bfloat16), [tuned[0].bfloat16()],
                       plan.kwargs)
    assert out.dtype == torch.bfloat16
    out = merge_tensor(plan.method, "w", base, [tuned[0]], plan.kwargs,
                       out_dtype=torch.float16)
    assert out.dtype == torch.float16
