"""Diagonal Fisher on a tiny classifier and a tiny causal LM, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.errors import UnknownNameError
from lineage.merge.fisher import estimate_fisher, save_fisher
from lineage.weights import open_model


@pytest.fixture
def classifier():
    """Softmax regression W [3, 4], b [3] on 12 examples: its gradient is analytic."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(12, 4)
    y = torch.randint(0, 3, (12,))
    return model, x, y


def np_grads(model, x, y):
    """Per-example d log softmax(Wx + b)[y] / d(W, b) = ((e_y - p) x^T, e_y - p)."""
    W, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    X = x.double().numpy()
    z = X @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out = []
    for i, yi in enumerate(y.tolist()):
        r = -p[i].copy()
        r[yi] += 1
        out.append((np.outer(r, X[i]), r))
    return p, out


def test_empirical_fisher_matches_per_example_brute_force(classifier):
    model, x, y = classifier
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]  # batch sizes must not matter
    fisher = estimate_fisher(model, batches, kind="empirical")
    _, grads = np_grads(model, x, y)
    np.testing.assert_allclose(fisher["weight"].numpy(),
                               np.mean([gw**2 for gw, _ in grads], axis=0), rtol=1e-4)
    np.testing.assert_allclose(fisher["bias"].numpy(),
                               np.mean([gb**2 for _, gb in grads], axis=0), rtol=1e-4)


def test_sampled_fisher_converges_to_the_expectation_over_model_labels(classifier):
    model, x, _ = classifier
    reps = 150  # each example repeated: the sampled estimate averages over labels
    batches = [(x, torch.zeros(12, dtype=torch.long))] * reps
    fisher = estimate_fisher(model, batches, kind="sampled", seed=3)
    p, _ = np_grads(model, x, torch.zeros(12, dtype=torch.long))
    # Exact Fisher: mean_x sum_y p(y|x) g(x, y)^2
    exact = np.zeros((3,))
    for c in range(3):
        _, gc = np_grads(model, x, torch.full((12,), c))
        exact += np.mean([p[i, c] * gc[i][1] ** 2 for i in range(12)], axis=0)
    np.testing.assert_allclose(fisher["bias"].numpy(), exact, rtol=0.15)
    assert (fisher["weight"] > 0).all() and (fisher["bias"] > 0).all()
    empirical = estimate_fisher(model, [(x, classifier[2])], kind="empirical")
    assert not torch.allclose(fisher["weight"], empirical["weight"], rtol=0.05)


def test_sampled_fisher_is_reproducible_and_respects_n_samples(classifier):
    model, x, y = classifier
    a = estimate_fisher(model, [(x, y)], seed=1, n_samples=7)
    b = estimate_fisher(model, [(x[:7], y[:7])], seed=1)
    torch.testing.assert_close(a["weight"], b["weight"])
    with pytest.raises(UnknownNameError, match="Valid Fisher kinds: empirical, sampled"):
        estimate_fisher(model, [(x, y)], kind="exact")


class TinyLM(torch.nn.Module):
    """Embedding -> head with a tied weight, logits [B, T, V]."""

    def __init__(self, vocab=7, dim=5):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, input_ids, attention_mask=None):
        return self.head(torch.tanh(self.mix(self.embed(input_ids))))


def test_causal_lm_empirical_fisher_per_token_labels(tmp_path):
    torch.manual_seed(0)
    model = TinyLM()
    ids = torch.randint(0, 7, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[2, 4:] = 0  # padding: not predicted
    fisher = estimate_fisher(model, [{"input_ids": ids, "attention_mask": mask}],
                             kind="empirical")
    assert set(fisher) == set(model.state_dict())  # tied weight under both names
    torch.testing.assert_close(fisher["embed.weight"], fisher["head.weight"])
    # Brute force: one sequence at a time, explicit loop over predicted tokens.
    want = torch.zeros(5, 5)
    for s in range(3):
        model.zero_grad()
        logits = model(ids[s : s + 1])[0]
        ll = sum(torch.log_softmax(logits[t], -1)[ids[s, t + 1]]
                 for t in range(5) if mask[s, t + 1])
        ll.backward()
        want += model.mix.weight.grad**2
    torch.testing.assert_close(fisher["mix.weight"], want / 3, rtol=1e-4, atol=1e-7)
    sampled = estimate_fisher(model, [{"input_ids": ids}], kind="sampled")
    assert (sampled["mix.weight"] > 0).all()
    path = save_fisher(sampled, tmp_path / "fisher.safetensors", n_examples=3)
    with open_model(path) as m:
        assert sorted(m.names()) == sorted(model.state_dict())
        torch.testing.assert_close(m.tensor("mix.weight"), sampled["mix.weight"])
