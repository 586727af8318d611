"""Build a zoo: plan it, train and write every model, write ground_truth.json; cache it.

Resumable: each model folder appears atomically with a result record beside the build
state, so a re-run after a kill skips finished models. A finished zoo is cached by spec
hash, so a second build of the same spec is a copy (or nothing, if already in place).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lineage.errors import SpecError
from lineage.zoo.plan import Node, plan_zoo
from lineage.zoo.spec import TreeSpec, ZooSpec, load_spec
from lineage.zoo.truth import FILENAME, assemble, load_ground_truth
from lineage.zoo.write import atomic_dir, clean_stale_temps, locked, write_text_atomic

STATE_DIR = ".zoo"  # build state inside the zoo folder: spec + one result per model
BUILD_RECORD = "build.json"  # in STATE_DIR: how long the build that made the zoo took


@dataclass
class ZooResult:
    root: Path
    spec: ZooSpec
    spec_hash: str
    cached: bool
    seconds: float

    @property
    def ground_truth(self) -> dict[str, Any]:
        return load_ground_truth(self.root)

    @property
    def model_ids(self) -> list[str]:
        return [n["id"] for n in self.ground_truth["nodes"]]

    @property
    def build_record(self) -> dict[str, Any]:
        """{"seconds", "cpu_seconds"} of the build that made this zoo (also when it now
        comes from the cache); values are None when the build was resumed across runs,
        and the dict is empty for zoos built before the record existed."""
        path = self.root / STATE_DIR / BUILD_RECORD
        return json.loads(path.read_text()) if path.is_file() else {}


def default_cache_dir() -> Path:
    env = os.environ.get("LINEAGE_ZOO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lineage" / "zoo"


def build_zoo(
    spec: str | Path | dict | ZooSpec,
    out_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> ZooResult:
    """Build (or fetch from cache) the zoo `spec` describes, into `out_dir`.

    `spec`: a preset name, a YAML/TOML path, a dict or a ZooSpec. Without `out_dir` the
    zoo lives in the cache (`cache_dir`, $LINEAGE_ZOO_CACHE or ~/.cache/lineage/zoo).
    """
    started = time.perf_counter()
    spec = load_spec(spec)
    digest = spec.hash()
    cached = Path(cache_dir or default_cache_dir()) / f"{spec.name}-{digest[:16]}"
    target = Path(out_dir) if out_dir is not None else cached
    with locked(target):
        hit = _is_built(target, digest)
        from_cache = use_cache and target != cached and _is_built(cached, digest)
        if not hit and from_cache and _is_empty(target):  # else resume what is in target
            _copy_zoo(cached, target)
            hit = True
        if not hit:
            _build_into(spec, target, digest, progress, started)
    if not hit and use_cache and target != cached and not from_cache:
        with locked(cached):
            if not _is_built(cached, digest):
                _copy_zoo(target, cached)
    return ZooResult(target, spec, digest, hit, time.perf_counter() - started)


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _is_built(root: Path, digest: str) -> bool:
    path = root / FILENAME
    if not path.is_file():
        return False
    built = json.loads(path.read_text())["zoo"]["spec_hash"]
    if built != digest:
        raise SpecError(
            f"zoo folder {str(root)!r}",
            "already holds a different zoo (another spec hash)",
            "Build into an empty folder or delete this one",
        )
    return True


def _copy_zoo(source: Path, dest: Path) -> None:
    """Copy a whole zoo into an empty or missing `dest`, appearing all at once."""
    with atomic_dir(dest) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


def _build_into(
    spec: ZooSpec, root: Path, digest: str, progress: bool, started: float
) -> None:
    from tqdm import tqdm

    from lineage.zoo.arch import quiet_transformers
    from lineage.zoo.makers import make_node
    from lineage.zoo.train import single_threaded

    quiet_transformers()
    cpu_started = time.process_time()
    state = _open_state(root, spec, digest)
    nodes = plan_zoo(spec)
    by_id = {n.id: n for n in nodes}
    trees = _tree_specs(spec)
    results: dict[str, dict] = {}
    built: list[str] = []
    bar = tqdm(nodes, desc=f"zoo {spec.name}", unit="model", disable=not progress)
    with single_threaded():
        for node in bar:
            results[node.id] = _result_of(node, root, state, by_id)
            if results[node.id] is None:
                results[node.id] = make_node(node, trees[node.tree], root, by_id)
                _save_result(state, node.id, results[node.id])
                built.append(node.id)
    truth = assemble(spec, nodes, root, results)
    resumed = len(list((state / "results").glob("*.json"))) > len(built)
    # CPU seconds too: on a shared machine wall time says more about the neighbours.
    record = {
        "seconds": None if resumed else round(time.perf_counter() - started, 2),
        "cpu_seconds": None if resumed else round(time.process_time() - cpu_started, 2),
    }
    write_text_atomic(state / BUILD_RECORD, json.dumps(record))
    write_text_atomic(root / FILENAME, json.dumps(truth, indent=1, sort_keys=False) + "\n")


def _open_state(root: Path, spec: ZooSpec, digest: str) -> Path:
    state = root / STATE_DIR
    spec_file = state / "spec.json"
    if spec_file.is_file() and json.loads(spec_file.read_text())["spec_hash"] != digest:
        raise SpecError(
            f"zoo folder {str(root)!r}",
            "holds a partial build of a different spec",
            "Build into an empty folder or delete this one",
        )
    if root.is_dir() and not spec_file.is_file() and any(root.iterdir()):
        raise SpecError(
            f"zoo folder {str(root)!r}", "is not empty and is not a zoo", "Give an empty folder"
        )
    clean_stale_temps(root)
    payload = {"spec_hash": digest, "spec": spec.to_dict()}
    write_text_atomic(spec_file, json.dumps(payload, indent=1))
    return state


def _result_of(node: Node, root: Path, state: Path, by_id: dict) -> dict | None:
    """The saved result of a finished model, or None if it must be (re)built."""
    record = state / "results" / (node.id.replace("/", "__") + ".json")
    folders = [node.id] + ([node.twin] if node.twin and node.relation == "lora" else [])
    if node.relation == "adapter":  # trained and written together with its merged twin
        twin = json.loads(
            (state / "results" / (node.twin.replace("/", "__") + ".json")).read_text()
        )
        return {"accuracy": twin.get("accuracy")}
    if record.is_file() and all((root / f).is_dir() for f in folders):
        return json.loads(record.read_text())
    return None


def _save_result(state: Path, node_id: str, result: dict) -> None:
    path = state / "results" / (node_id.replace("/", "__") + ".json")
    write_text_atomic(path, json.dumps(result))


def _tree_specs(spec: ZooSpec) -> list[TreeSpec]:
    return [tree for tree in spec.trees for _ in range(tree.count)]
