"""Kinship at scale on Ray: `python -m jobs.kinship --catalog DIR [--top-k K]`.

Reads model-level sketches from the catalog (no weights), compares models only within
an architecture signature, and spreads row blocks of each group over Ray tasks that ask
for a GPU when the cluster has one. Writes, in one batch:
  - top-k nearest relatives per model by sketch distance (metric l2) with the sketch
    cosine of the same pairs (method sketch);
  - exact duplicates and shared frozen tensors from content hashes (method content-hash);
  - optionally exact streaming kinship of the best candidate pairs (method exact).
Idempotent: a run over the same model revisions with the same options is skipped.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import ray
from tqdm import tqdm

from catalog import Catalog
from catalog.kinship_io import (
    ModelSketches,
    kinship_table,
    load_model_sketches,
    load_tensor_hashes,
)
from catalog.runs import finish_run, last_successful_run, start_run
from jobs.entry import Parser, run_entry
from jobs.ray_session import ray_session
from lineage.errors import LineageError
from lineage.fingerprint import DEFAULT_WIDTH
from lineage.kinship import find_duplicates, kinship, topk_rows

JOB = "kinship"


@ray.remote
def topk_task(matrix: np.ndarray, start: int, stop: int, k: int, use_gpu: bool):
    """Top-k neighbours of rows start:stop of one architecture group."""
    import torch

    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    found = topk_rows(matrix, start, stop, k, metric="l2", device=device)
    return found.i, found.j, found.value, [str(g) for g in ray.get_gpu_ids()]


def plan_tasks(arch: list[str], rows_per_task: int) -> list[tuple[int, int, int]]:
    """(group start, group stop, row start) blocks; rows of one group are contiguous."""
    blocks, start = [], 0
    for stop in range(1, len(arch) + 1):
        if stop == len(arch) or arch[stop] != arch[start]:
            if stop - start > 1:
                blocks += [(start, stop, r) for r in range(start, stop, rows_per_task)]
            start = stop
    return blocks


def sketch_topk(
    sk: ModelSketches, k: int, rows_per_task: int, use_gpu: bool
) -> tuple[list[dict], int]:
    """Candidate pairs as kinship rows, and how many tasks ran with a GPU assigned."""
    blocks = plan_tasks(sk.arch, rows_per_task)
    groups = {(g0, g1): ray.put(sk.matrix[g0:g1]) for g0, g1, _ in blocks}
    gpu = {"num_gpus": 1} if use_gpu else {"num_cpus": 0.5}
    futures = [
        topk_task.options(**gpu).remote(
            groups[(g0, g1)], r0 - g0, min(r0 + rows_per_task, g1) - g0, k, use_gpu
        )
        for g0, g1, r0 in blocks
    ]
    rows, seen, gpu_tasks = [], set(), 0
    for (g0, _, _), fut in tqdm(
        zip(blocks, futures, strict=True), total=len(futures), desc="kinship blocks"
    ):
        *found, gpu_ids = ray.get(fut)
        gpu_tasks += bool(gpu_ids)
        for i, j, dist in zip(*found, strict=True):
            a, b = sorted((int(i) + g0, int(j) + g0))
            if (a, b) not in seen:
                seen.add((a, b))
                rows += _sketch_rows(sk, a, b, float(dist))
    return rows, gpu_tasks


def _sketch_rows(sk: ModelSketches, a: int, b: int, dist: float) -> list[dict]:
    u, v = sk.matrix[a].astype(np.float64), sk.matrix[b].astype(np.float64)
    cosine = float(u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-300))
    pair = {"a": sk.ids[a], "b": sk.ids[b], "base": None, "method": "sketch"}
    return [{**pair, "metric": "l2", "value": dist}, {**pair, "metric": "cosine", "value": cosine}]


def hash_rows(catalog: Catalog) -> list[dict]:
    """Exact duplicates and the fraction of tensors two models share byte for byte."""
    report = find_duplicates(load_tensor_hashes(catalog))
    rows = [
        {
            "a": a,
            "b": b,
            "base": None,
            "metric": "identical",
            "value": 1.0,
            "method": "content-hash",
        }
        for a, b in report.duplicate_pairs
    ]
    rows += [
        {
            "a": s.a,
            "b": s.b,
            "base": None,
            "metric": "shared_tensor_fraction",
            "value": s.n_shared / max(min(s.n_a, s.n_b), 1),
            "method": "content-hash",
        }
        for s in report.shared
    ]
    return rows


def verify_rows(sk: ModelSketches, candidates: list[dict], n: int) -> list[dict]:
    """Exact streaming l2 and cosine of the n closest candidate pairs of local models."""
    paths = {
        m: s.removeprefix("local:")
        for m, s in zip(sk.ids, sk.sources, strict=True)
        if s and s.startswith("local:")
    }
    best = sorted((r for r in candidates if r["metric"] == "l2"), key=lambda r: r["value"])
    rows = []
    for r in [r for r in best if r["a"] in paths and r["b"] in paths][:n]:
        try:
            result = kinship(Path(paths[r["a"]]), Path(paths[r["b"]]), metrics="l2,cs")
        except LineageError as err:
            print(f"verify {r['a']} ~ {r['b']}: {err}", file=sys.stderr)
            continue
        rows += [
            {
                "a": r["a"],
                "b": r["b"],
                "base": None,
                "metric": metric,
                "value": result.values[key],
                "method": "exact",
            }
            for metric, key in (("l2", "l2"), ("cosine", "cs"))
        ]
    return rows


def input_digest(sk: ModelSketches, params: dict) -> str:
    items = sorted(zip(sk.ids, sk.revisions, strict=True))
    return hashlib.sha256(json.dumps([items, params], sort_keys=True).encode()).hexdigest()


def run_kinship(
    catalog: Catalog,
    *,
    top_k: int = 10,
    width: int = DEFAULT_WIDTH,
    rows_per_task: int = 2048,
    verify: int = 0,
    gpus: bool | None = None,
) -> dict:
    """The library call behind `python -m jobs.kinship`; returns a summary."""
    sk = load_model_sketches(catalog, width)
    params = {"top_k": top_k, "width": width, "verify": verify}
    digest = input_digest(sk, params)
    last = last_successful_run(catalog, JOB)
    if last and last["params"].get("digest") == digest:
        return {
            "run_id": last["run_id"],
            "skipped": True,
            "rows": 0,
            "models": len(sk.ids),
            "gpu_tasks": 0,
        }
    use_gpu = ray.cluster_resources().get("GPU", 0) > 0 if gpus is None else gpus
    run_id = start_run(catalog, JOB, {**params, "digest": digest})
    try:
        rows, gpu_tasks = sketch_topk(sk, top_k, rows_per_task, use_gpu)
        rows += hash_rows(catalog) + verify_rows(sk, rows, verify)
        catalog.commit({"kinship": kinship_table([{**r, "run_id": run_id} for r in rows])})
    except BaseException:
        finish_run(catalog, run_id, "failed")
        raise
    finish_run(catalog, run_id)
    return {
        "run_id": run_id,
        "skipped": False,
        "rows": len(rows),
        "models": len(sk.ids),
        "gpu_tasks": gpu_tasks,
    }


def main(argv: list[str] | None = None) -> int:
    return run_entry("jobs.kinship", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = Parser(prog="python -m jobs.kinship", description=__doc__)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        help="exactly verify the N closest candidate pairs (local models)",
    )
    parser.add_argument("--rows-per-task", type=int, default=2048)
    parser.add_argument("--address", default=None, help="Ray address (default: auto)")
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args(argv)
    with ray_session(args.address, num_cpus=args.num_cpus):
        summary = run_kinship(
            Catalog(args.catalog, create=False),
            top_k=args.top_k,
            rows_per_task=args.rows_per_task,
            verify=args.verify,
        )
    state = "up to date, skipped" if summary["skipped"] else f"wrote {summary['rows']} rows"
    print(f"kinship run {summary['run_id']}: {summary['models']} models, {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
