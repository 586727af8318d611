"""The Ray kinship job over a real catalog of real models."""

from __future__ import annotations

import shutil

import pytest
import torch

from catalog import Catalog
from catalog.query import run_query
from jobs.kinship import plan_tasks, run_kinship
from jobs.local_index import index_local
from lineage.kinship import kinship
from lineage.weights import write_safetensors


def _family(root, seed, names, hidden=96):
    """A base and children at increasing distances; the children are base + noise."""
    gen = torch.Generator().manual_seed(seed)
    base = {f"l{i}.weight": torch.randn(hidden, hidden, generator=gen) for i in range(2)}
    for step, name in enumerate(names):
        scale = 0.0 if step == 0 else 0.01 * step
        state = {k: v + scale * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        folder = root / name
        write_safetensors(folder / "model.safetensors", state)
        (folder / "config.json").write_text('{"model_type": "toy"}')


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    _family(root / "fam", 0, ["base", "near", "far"])
    _family(root / "other", 1, ["base", "child"], hidden=80)  # another architecture
    shutil.copytree(root / "fam" / "near", root / "fam" / "near-copy")
    cat = Catalog(tmp_path_factory.mktemp("cat") / "c")
    index_local(cat, [root], progress=False)
    return cat, root


@pytest.fixture
def ray_fake_gpu(ray_cluster):
    """The session's Ray with fake GPUs (tests/conftest.py)."""


def test_plan_tasks_splits_each_group_and_skips_singletons():
    arch = ["a", "a", "a", "b", "c", "c"]
    assert plan_tasks(arch, 2) == [(0, 3, 0), (0, 3, 2), (4, 6, 4)]


def test_kinship_job_finds_relatives_within_architectures(catalog, ray_fake_gpu):
    cat, root = catalog
    summary = run_kinship(cat, top_k=2, width=4096, verify=10)
    assert summary["gpu_tasks"] >= 1  # the tasks asked for and got the (fake) GPU
    rows = run_query(cat, "SELECT a, b, metric, value, method FROM latest_kinship").rows
    sketch_pairs = {(a, b) for a, b, m, _, meth in rows if meth == "sketch"}
    for a, b in sketch_pairs:  # never across architectures
        assert a.split("/")[0] == b.split("/")[0]
    l2 = {(a, b): v for a, b, m, v, meth in rows if m == "l2" and meth == "sketch"}
    assert l2[("fam/base", "fam/near")] < l2[("fam/base", "fam/far")]
    # Exact duplicates from content hashes.
    assert ("fam/near", "fam/near-copy", "identical", 1.0, "content-hash") in rows
    # Verified pairs agree with exact streaming kinship on the weights.
    exact = {(a, b): v for a, b, m, v, meth in rows if m == "l2" and meth == "exact"}
    assert ("fam/base", "fam/near") in exact
    direct = kinship(root / "fam/base", root / "fam/near", metrics="l2").values["l2"]
    assert exact[("fam/base", "fam/near")] == pytest.approx(direct, rel=1e-9)
    # Tensors of 96x96 > 4096 elements: the sketch distance is an estimate, close to exact.
    assert l2[("fam/base", "fam/near")] == pytest.approx(direct, rel=0.1)


def test_rerun_over_the_same_revisions_is_skipped(catalog, ray_fake_gpu):
    cat, _ = catalog
    first = run_kinship(cat, top_k=2, width=4096)
    count = run_query(cat, "SELECT count(*) FROM kinship").rows[0][0]
    again = run_kinship(cat, top_k=2, width=4096)
    assert again["skipped"] and again["run_id"] == first["run_id"]
    assert run_query(cat, "SELECT count(*) FROM kinship").rows[0][0] == count
