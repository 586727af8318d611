"""The merge as a Ray task: a whole GPU when the cluster has one (Ray's fake GPU resource
here, so placement is tested without a GPU), else a fraction of a CPU."""

from __future__ import annotations

import pytest
import torch
import yaml

from jobs.merge import main
from jobs.merging import run_merge_job
from jobs.merging.executors import placement
from tests.merge_jobs.conftest import count, tensors_of

RECIPE = {"merge_method": "task_arithmetic", "base_model": "org/base", "name": "org/ray-ta",
          "models": [{"model": "org/ft0", "parameters": {"weight": 0.7}},
                     {"model": "org/ft2", "parameters": {"weight": 0.3}}]}


@pytest.fixture
def ray_with_fake_gpu(ray_cluster):
    import ray

    return ray


def test_placement_rule():
    assert placement({"CPU": 8.0, "GPU": 2.0}) == {"num_gpus": 1, "num_cpus": 1}
    assert placement({"CPU": 2.0}) == {"num_gpus": 0, "num_cpus": 0.5}


def test_merge_task_gets_the_gpu_and_matches_local(ray_with_fake_gpu, tmp_path, catalog):
    report = run_merge_job(RECIPE, tmp_path / "ray", catalog=catalog, executor="ray")
    assert report.placement["options"] == {"num_gpus": 1, "num_cpus": 1}
    assert len(report.placement["gpu_ids"]) == 1  # one of the session's fake GPUs
    local = run_merge_job({**RECIPE, "name": "org/local-ta"}, tmp_path / "local",
                          catalog=catalog)
    got, want = tensors_of(report.out_dir), tensors_of(local.out_dir)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    assert count(catalog, "SELECT count(*) FROM edges WHERE child = 'org/ray-ta' "
                          "AND source = 'merge-job'") == 3


def test_module_entrypoint(ray_with_fake_gpu, tmp_path, catalog, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    args = ["--recipe", str(recipe), "--out", str(tmp_path / "o"), "--catalog", str(catalog.root)]
    assert main(args) == 0
    assert "indexed as 'org/ray-ta'" in capsys.readouterr().out
    assert main(args) == 0  # idempotent
    assert "already holds this merge" in capsys.readouterr().out
    assert count(catalog, "SELECT count(*) FROM current_models WHERE model_id = 'org/ray-ta'") == 1
