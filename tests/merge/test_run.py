"""The streaming driver on real safetensors model folders built in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lineage.errors import IncompatibleModelsError, SpecError
from lineage.merge import merge_models
from lineage.weights import parse_front_matter
from tests.merge._helpers import Pico, load_all, save_model


@pytest.fixture
def family(tmp_path):
    """A base model and two fine-tunes (base + noise), saved as model folders."""
    torch.manual_seed(0)
    base = Pico()
    paths = {"base": save_model(tmp_path / "base", base, torch_dtype="float32")}
    for i in range(2):
        child = Pico()
        child.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in child.parameters():
                p.add_(0.1 * torch.randn_like(p))
        paths[f"ft{i}"] = save_model(tmp_path / f"ft{i}", child)
    return paths


def recipe(method="task_arithmetic", **extra):
    return {"merge_method": method, "base_model": "org/base",
            "models": [{"model": "org/base"},
                       {"model": "org/ft0", "parameters": {"weight": 1.0}},
                       {"model": "org/ft1", "parameters": {"weight": 0.5}}],
            "parameters": {"lambda": 0.8}, **extra}


def resolver(paths):
    return lambda ref: paths[ref.removeprefix("org/")]


def test_merge_writes_values_config_and_card(family, tmp_path):
    out = tmp_path / "merged"
    result = merge_models(recipe(), out, resolve=resolver(family), progress=False)
    b, f0, f1 = (load_all(family[k]) for k in ("base", "ft0", "ft1"))
    merged = load_all(out)
    assert list(merged) == list(b)  # every tensor, in the base model's order
    for name, x in merged.items():
        if name == "position_ids":
            assert torch.equal(x, b[name])  # integer buffers are copied, not merged
            continue
        want = b[name].double() + 0.8 * ((f0[name].double() - b[name].double())
                                          + 0.5 * (f1[name].double() - b[name].double()))
        np.testing.assert_allclose(x.double().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert result.files == ("model.safetensors",) and result.n_tensors == len(b)
    assert json.loads((out / "config.json").read_text())["model_type"] == "pico"
    card = (out / "README.md").read_text()
    front = parse_front_matter(card)
    assert front["base_model"] == ["org/base", "org/ft0", "org/ft1"]
    assert front["base_model_relation"] == "merge"
    assert front["tags"] == ["merge", "lineage"]
    assert "merge_method: task_arithmetic" in card and "arxiv.org/abs/2212.04089" in card
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_merge_shards_past_the_threshold_with_an_index(family, tmp_path):
    out = tmp_path / "sharded"
    result = merge_models(recipe(dtype="bfloat16"), out, resolve=resolver(family),
                          progress=False, max_shard_bytes=200)
    assert len(result.files) > 2
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(result.files)
    assert all((out / f).is_file() for f in result.files)
    assert not (out / "model.safetensors").exists()
    merged = load_all(out)  # read back through the sharded index
    assert merged["up.weight"].dtype == torch.bfloat16
    assert merged["position_ids"].dtype == torch.int64
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in merged.values())
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    unsharded = load_all(merge_models(recipe(dtype="bfloat16"), tmp_path / "one",
                                      resolve=resolver(family), progress=False).out_dir)
    assert all(torch.equal(unsharded[n], merged[n]) for n in merged)


def test_incompatible_model_is_named(family, tmp_path):
    torch.manual_seed(1)
    family["odd"] = save_model(tmp_path / "odd", Pico(dim=4))
    data = recipe()
    data["models"].append({"model": "org/odd", "parameters": {"weight": 1.0}})
    with pytest.raises(IncompatibleModelsError) as e:
        merge_models(data, tmp_path / "never", resolve=resolver(family), progress=False)
    assert str(e.value).startswith("model org/odd: tensor 'down.bias' has shape [4]")
    assert "where org/base's is [8]" in str(e.value)
    assert not (tmp_path / "never").exists()


def test_a_failure_mid_stream_leaves_no_output(family, tmp_path):
    # DELLA needs density +/- epsilon inside (0, 1): refused at the first tensor.
    data = recipe("della", parameters={"density": 0.1, "epsilon": 0.15})
    with pytest.raises(SpecError, match="epsilon"):
        merge_models(data, tmp_path / "never", resolve=resolver(family), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "ft0", "ft1"]


def test_existing_output_is_kept_unless_overwrite(family, tmp_path):
    out = tmp_path / "merged"
    merge_models(recipe(), out, resolve=resolver(family), progress=False)
    with pytest.raises(SpecError, match="already exists"):
        merge_models(recipe(), out, resolve=resolver(family), progress=False)
    merge_models(recipe("ties"), out, resolve=resolver(family), progress=False, overwrite=True)
    assert "merge_method: ties" in (out / "README.md").read_text()


def test_ubgm_with_fisher_files_from_the_recipe(family, tmp_path):
    b = load_all(family["base"])
    fisher_paths = []
    for i in range(2):
        g = torch.Generator().manual_seed(i)
        # Fisher for parameters only (no integer buffer), as estimate_fisher writes it.
        fisher = {n: torch.rand(t.shape, generator=g) for n, t in b.items()
                  if n != "position_ids"}
        fisher_paths.append(tmp_path / f"fisher{i}.safetensors")
        save_file(fisher, str(fisher_paths[-1]))
    data = {"merge_method": "ubgm", "base_model": "org/base",
            "models": [{"model": f"org/ft{i}", "parameters": {"fisher": str(p), "size": 10.0}}
                       for i, p in enumerate(fisher_paths)],
            "parameters": {"lambda": 0.5}}
    out = merge_models(data, tmp_path / "ubgm", resolve=resolver(family), progress=False)
    merged, f = load_all(out.out_dir), [load_all(p) for p in fisher_paths]
    ft = [load_all(family["ft0"]), load_all(family["ft1"])]
    name = "up.weight"
    h = [x[name].double() for x in f]
    den = 0.5 * 10 * (h[0] + h[1]) + 1e-8
    want = b[name].double() + 0.5 * sum((10 * h[i] + 1e-8) / den * (ft[i][name] - b[name])
                                        for i in range(2))
    np.testing.assert_allclose(merged[name].double().numpy(), want.numpy(), rtol=1e-5)


def test_fisher_file_of_another_architecture_is_refused(family, tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"something.else": torch.ones(3)}, str(bad))
    data = {"merge_method": "fisher",
            "models": [{"model": "org/ft0", "parameters": {"fisher": str(bad)}},
                       {"model": "org/ft1", "parameters": {"fisher": str(bad)}}]}
    with pytest.raises(IncompatibleModelsError, match="shares no tensor name"):
        merge_models(data, tmp_path / "x", resolve=resolver(family), progress=False)


def test_fisher_file_missing_a_float_tensor_is_refused(family, tmp_path):
    """A partial Fisher would silently turn part of the merge into a plain mean."""
    b = load_all(family["base"])
    partial = {n: torch.ones(t.shape) for n, t in b.items()
               if n not in ("position_ids", "up.weight")}
    path = tmp_path / "partial.safetensors"
    save_file(partial, str(path))
    data = {"merge_method": "fisher",
            "models": [{"model": "org/ft0", "parameters": {"fisher": str(path)}},
                       {"model": "org/ft1", "parameters": {"fisher": str(path)}}]}
    with pytest.raises(IncompatibleModelsError) as err:
        merge_models(data, tmp_path / "x", resolve=resolver(family), progress=False)
    assert "'up.weight'" in str(err.value) and str(path) in str(err.value)
    assert "lineage fisher" in str(err.value)
