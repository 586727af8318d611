"""Building: reproducibility, resume after a kill, the cache, init styles, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from jobs.cli import main
from lineage.errors import ModelNotFoundError, SpecError
from lineage.zoo import build_zoo, evaluate
from lineage.zoo.arch import new_model
from lineage.zoo.spec import Size

# Seconds to build: a few steps are enough to test plumbing, not learning.
MICRO = {
    "name": "micro",
    "seed": 1,
    "train": {"root_steps": 4, "child_steps": 2, "batch_size": 32},
    "size": {"hidden": 16, "intermediate": 32},
    "trees": [{"arch": "vit", "branching": [2], "relation": [["finetune", "lora"]]}],
}


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".zoo" not in p.parts
    }


def test_same_spec_gives_byte_identical_zoos_and_resumes(tmp_path):
    first = build_zoo(MICRO, tmp_path / "a", use_cache=False, progress=False)
    second = build_zoo(MICRO, tmp_path / "b", use_cache=False, progress=False)
    assert not first.cached and not second.cached
    a, b = files_of(first.root), files_of(second.root)
    assert len(a) == 13  # 4 repos, 3 files each, and ground_truth.json
    assert a == b
    # A killed build: one model gone, a half-written temp folder left, no ground truth.
    shutil.rmtree(first.root / "zoo-vit-0" / "model-2")
    (first.root / "ground_truth.json").unlink()
    (first.root / "zoo-vit-0" / ".model-2.tmp123").mkdir()
    resumed = build_zoo(MICRO, first.root, use_cache=False, progress=False)
    assert files_of(resumed.root) == b


def test_second_build_comes_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    built = build_zoo(MICRO, tmp_path / "one", cache_dir=cache, progress=False)
    again = build_zoo(MICRO, tmp_path / "one", cache_dir=cache, progress=False)
    copied = build_zoo(MICRO, tmp_path / "two", cache_dir=cache, progress=False)
    in_cache = build_zoo(MICRO, cache_dir=cache, progress=False)
    assert (built.cached, again.cached, copied.cached, in_cache.cached) == (False, True, True, True)
    assert copied.seconds < 5 and again.seconds < 1
    assert in_cache.root.parent == cache and in_cache.root.name.startswith("micro-")
    assert files_of(copied.root) == files_of(built.root) == files_of(in_cache.root)
    with pytest.raises(SpecError, match="already holds a different zoo"):
        build_zoo({**MICRO, "seed": 2}, tmp_path / "one", cache_dir=cache, progress=False)


def excess_kurtosis(t: torch.Tensor) -> float:
    t = t.detach().double().flatten()
    c = t - t.mean()
    return float((c**4).mean() / (c**2).mean() ** 2 - 3)


@pytest.mark.parametrize("arch", ["vit", "llama", "gpt2"])
def test_init_styles_are_normal_or_uniform(arch):
    size = Size(hidden=64, intermediate=128)
    hf, pt = new_model(arch, size, "hf", 0), new_model(arch, size, "torch", 0)
    square = [n for n, p in hf.named_parameters() if p.ndim == 2 and p.shape[0] == p.shape[1]]
    assert len(square) >= 2
    for name in square:
        w_hf, w_pt = hf.get_parameter(name).detach(), pt.get_parameter(name).detach()
        # std 0.02 (GPT-2 scales residual projections down by sqrt(2 * layers)).
        assert abs(excess_kurtosis(w_hf)) < 0.3 and 0.008 < float(w_hf.std()) < 0.022
        assert abs(excess_kurtosis(w_pt) + 1.2) < 0.1  # a uniform's excess kurtosis is -1.2
        bound = 1 / 64**0.5
        assert float(w_pt.abs().max()) <= bound and float(w_pt.abs().max()) > 0.95 * bound


def test_cli_build_and_eval(tiny_zoo, nodes, capsys, zoo_cache, tmp_path):
    assert main(["zoo", "build", "tiny", str(tmp_path / "z"), "--cache-dir", str(zoo_cache)]) == 0
    assert "15 models in 2 trees from cache" in capsys.readouterr().out
    lora = next(n for n in nodes.values() if n["relation"] == "lora" and n["arch"] == "vit")
    assert main(["zoo", "eval", str(tmp_path / "z" / lora["id"])]) == 0
    task, acc = capsys.readouterr().out.split()
    assert task == lora["task"] and float(acc) == pytest.approx(lora["result"]["accuracy"], 1e-3)
    assert main(["zoo", "eval", str(tmp_path / "z" / lora["id"]), "--task", "text-sort"]) == 1
    assert "is a text task but the model takes image input" in capsys.readouterr().err


def test_evaluate_works_outside_a_zoo_with_a_task(tiny_zoo, nodes, tmp_path):
    merge = next(n for n in nodes.values() if n["relation"] == "merge")
    moved = tmp_path / "someone-elses-merge"
    shutil.copytree(tiny_zoo.root / merge["id"], moved)
    assert evaluate(moved, merge["task"]) == pytest.approx(merge["result"]["accuracy"], abs=1e-5)
    with pytest.raises(SpecError, match=r"not inside a built zoo.*Pass a task name"):
        evaluate(moved)
    with pytest.raises(ModelNotFoundError, match="is not a folder"):
        evaluate(tmp_path / "nothing", "digits")
    truth = json.loads((tiny_zoo.root / "ground_truth.json").read_text())
    assert truth["zoo"]["spec_hash"] == tiny_zoo.spec_hash
