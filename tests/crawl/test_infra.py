"""The deployment files parse, ask for GPUs, agree on the image, and their entrypoints
are commands our CLI accepts; the CronJob's script yields the slot id Python computes."""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from jobs.cli import build_parser
from jobs.crawl.schedule import parse_every, submission_id
from jobs.index import build_parser as index_parser

INFRA = Path(__file__).parents[2] / "infra"
IMAGE = "ghcr.io/lineage-project/lineage:0.1.0"


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((INFRA / name).read_text()) if d]


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def gpu_groups(spec: dict) -> list[dict]:
    return [
        g
        for g in spec["workerGroupSpecs"]
        if all(c["resources"]["limits"].get("nvidia.com/gpu") for c in containers(g["template"]))
    ]


def check_ray_cluster_spec(spec: dict) -> None:
    head = containers(spec["headGroupSpec"]["template"])
    groups = gpu_groups(spec)
    assert groups and all(g["rayStartParams"]["num-gpus"] == "1" for g in groups)
    images = {c["image"] for c in head} | {
        c["image"] for g in spec["workerGroupSpecs"] for c in containers(g["template"])
    }
    assert images == {IMAGE}
    envs = [e for c in head for e in c.get("env", [])]
    token = [e for e in envs if e["name"] == "HF_TOKEN"]
    assert token and "secretKeyRef" in token[0]["valueFrom"]  # never a literal value


def test_raycluster_has_a_gpu_worker_group():
    (cluster,) = load("k8s/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    check_ray_cluster_spec(cluster["spec"])


def test_rayjob_entrypoint_is_a_valid_lineage_command():
    (job,) = load("k8s/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    check_ray_cluster_spec(job["spec"]["rayClusterSpec"])
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["lineage", "schedule"]
    args = build_parser().parse_args(argv[1:])
    assert args.func.__module__ == "jobs.commands.schedule"
    assert args.gpus_per_worker == 1.0 and args.catalog == "/catalog"
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_launcher_yaml_has_gpu_nodes_and_the_same_image():
    (config,) = load("ray-cluster.yaml")
    assert config["docker"]["image"] == IMAGE
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())
    comment = (INFRA / "ray-cluster.yaml").read_text().split("cluster_name")[0]
    submit = comment.split("-- \\\n#")[1].split("\n")[0]
    index_parser().parse_args(shlex.split(submit)[3:])  # the documented submit parses


def test_dockerfile_installs_the_project():
    text = (INFRA / "Dockerfile").read_text()
    assert "FROM ${RAY_IMAGE}" in text and "rayproject/ray:2.60.0-py311-gpu" in text
    for needed in ("COPY lineage", "COPY catalog", "COPY jobs", "pip install --no-cache-dir ."):
        assert needed in text
    assert IMAGE in text


def test_cron_line_runs_schedule():
    line = [
        x
        for x in (INFRA / "cron/lineage-index.cron").read_text().splitlines()
        if x and not x.startswith(("#", "CRON_TZ"))
    ][0]
    command = line.split(" ", 5)[5].split("&&")[-1].split(">>")[0]
    argv = shlex.split(command)
    assert argv[:2] == ["lineage", "schedule"]
    build_parser().parse_args(argv[1:])


def test_cronjob_script_creates_the_slots_rayjob(tmp_path):
    docs = {d["kind"]: d for d in load("k8s/cronjob.yaml")}
    pod = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert docs["Role"]["rules"][0]["resources"] == ["rayjobs"]
    script = pod["containers"][0]["args"][0].replace("/template/", f"{tmp_path}/")
    (tmp_path / "rayjob.yaml").write_text((INFRA / "k8s/rayjob.yaml").read_text())
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "kubectl").write_text(  # `get` finds nothing; `create -f -` records the YAML
        f'#!/bin/sh\n[ "$1" = get ] && exit 1\ncat > {tmp_path}/created.yaml\n'
    )
    (fake / "kubectl").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    subprocess.run(["/bin/sh", "-c", script], check=True, env=env)
    created = yaml.safe_load((tmp_path / "created.yaml").read_text())
    expected = submission_id(datetime.now(UTC), parse_every("1d"))
    assert created["spec"]["jobId"] == expected
    assert created["metadata"]["name"] == expected.lower()
    argv = shlex.split(created["spec"]["entrypoint"])
    slot = argv[argv.index("--slot") + 1]
    assert submission_id(datetime.fromisoformat(slot), parse_every("1d")) == expected
    kustom = load("k8s/kustomization.yaml")[0]
    assert kustom["configMapGenerator"][0]["files"] == ["rayjob.yaml"]
