"""TALL-mask compression and reconstruction on pico model folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lineage.errors import UnknownNameError
from lineage.merge import merge_models
from lineage.merge.tall import compress, pack_mask, reconstruct, unpack_mask
from lineage.weights import open_model, parse_front_matter
from tests.merge._helpers import Pico, load_all, save_model


@pytest.fixture
def tasks(tmp_path):
    """A base and three fine-tunes, each changing a random 30% of weights."""
    torch.manual_seed(0)
    base = Pico(vocab=20, dim=16)
    paths = {"base": save_model(tmp_path / "base", base)}
    for t in range(3):
        child = Pico(vocab=20, dim=16)
        child.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in child.parameters():
                p.add_(torch.randn_like(p) * (torch.rand_like(p) < 0.3))
        paths[f"t{t}"] = save_model(tmp_path / f"t{t}", child)
    return paths


def np_reconstruct(base, tuned, t, lam):
    taus = [x - base for x in tuned]
    mtl = sum(taus)
    return base + (np.abs(taus[t]) >= lam * np.abs(mtl - taus[t])) * mtl


def test_pack_roundtrip():
    m = torch.rand(3, 7, 5) > 0.5
    packed = pack_mask(m)
    assert packed.dtype == torch.uint8 and packed.numel() == (105 + 7) // 8
    assert torch.equal(unpack_mask(packed, (3, 7, 5)), m)


def test_compress_then_reconstruct_every_task(tasks, tmp_path):
    ids = ["t0", "t1", "t2"]
    res = compress("base", ids, tmp_path / "c", lam=[0.3, 0.4, 0.5], resolve=tasks.get)
    # tau_MTL (one float32 model) + 3 bits per weight, against 3 float32 models: ~0.36,
    # plus the two safetensors headers (large next to a pico model).
    shapes = [x.shape for n, x in load_all(tasks["base"]).items() if n != "position_ids"]
    data = sum(4 * s.numel() + 3 * ((s.numel() + 7) // 8) for s in shapes)
    headers = sum(8 + int.from_bytes((tmp_path / "c" / f).read_bytes()[:8], "little")
                  for f in ("tau_mtl.safetensors", "masks.safetensors"))
    assert res.compressed_bytes == data + headers
    assert res.full_bytes == 3 * sum(x.numel() * x.element_size()
                                     for x in load_all(tasks["base"]).values())
    assert 0.3 < data / res.full_bytes < 0.4 and res.ratio < 0.5
    meta = json.loads((tmp_path / "c" / "tall.json").read_text())
    assert meta["lam"] == [0.3, 0.4, 0.5] and meta["models"] == ids
    b = {n: x.double().numpy() for n, x in load_all(tasks["base"]).items()}
    tuned = [{n: x.double().numpy() for n, x in load_all(tasks[i]).items()} for i in ids]
    for t, lam in enumerate([0.3, 0.4, 0.5]):
        out = reconstruct(tmp_path / "c", ids[t] if t else 0, tmp_path / f"r{t}",
                          resolve=tasks.get)
        got = load_all(out.out_dir)
        for name in ("up.weight", "embed.weight", "norm.bias"):
            want = np_reconstruct(b[name], [x[name] for x in tuned], t, lam)
            np.testing.assert_allclose(got[name].double().numpy(), want, rtol=1e-5, atol=1e-6)
        assert torch.equal(got["position_ids"], torch.arange(6))
    front = parse_front_matter((tmp_path / "r1" / "README.md").read_text())
    assert front["base_model"] == ["base", *ids]


def test_reconstruction_matches_the_tall_mask_merge_method(tasks, tmp_path):
    compress("base", ["t0", "t1", "t2"], tmp_path / "c", lam=0.4, resolve=tasks.get)
    reconstruct(tmp_path / "c", 2, tmp_path / "r", resolve=tasks.get)
    recipe = {"merge_method": "tall_mask", "base_model": "base",
              "models": ["t0", "t1", "t2"], "parameters": {"task": "t2", "lam": 0.4}}
    merge_models(recipe, tmp_path / "m", resolve=tasks.get, progress=False)
    a, b = load_all(tmp_path / "r"), load_all(tmp_path / "m")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_score_callback_chooses_lambda_per_task(tasks, tmp_path):
    truth = [load_all(tasks[f"t{t}"]) for t in range(3)]
    calls = []

    def score(task, lam, state):  # held-out stand-in: closeness to the true fine-tune
        calls.append((task, lam))
        return -sum(float((state[n] - truth[task][n]).double().pow(2).sum()) for n in state)

    res = compress("base", ["t0", "t1", "t2"], tmp_path / "c", score=score, resolve=tasks.get)
    assert len(calls) == 15  # 3 tasks x 5 candidates
    b = {n: x.double().numpy() for n, x in load_all(tasks["base"]).items()}
    tuned = [{n: x.double().numpy() for n, x in t.items()} for t in truth]
    names = [n for n in b if n != "position_ids"]
    for t in range(3):
        errors = {lam: sum(((np_reconstruct(b[n], [x[n] for x in tuned], t, lam)
                             - tuned[t][n]) ** 2).sum() for n in names)
                  for lam in (0.2, 0.3, 0.4, 0.5, 0.6)}
        assert res.lams[t] == min(errors, key=errors.get)
    with open_model(tmp_path / "c" / "masks.safetensors") as m:
        assert m.infos()["task0::up.weight"].dtype == "U8"


def test_unknown_task_lists_the_compressed_models(tasks, tmp_path):
    compress("base", ["t0", "t1"], tmp_path / "c", resolve=tasks.get)
    with pytest.raises(UnknownNameError, match="Valid compressed models: 0, 1, t0, t1"):
        reconstruct(tmp_path / "c", "t9", tmp_path / "r", resolve=tasks.get)
