"""Ground-truth model zoos: small models actually trained, in Hub-like relations.

from lineage.zoo import build_zoo, load_ground_truth, evaluate
zoo = build_zoo("tiny", "/tmp/zoo")          # preset, YAML/TOML path, dict or ZooSpec
truth = load_ground_truth(zoo.root)           # nodes, edges, relations, card lies...
evaluate("/tmp/zoo/zoo-vit-0/model-1")        # held-out accuracy on its own task
"""

from lineage.zoo.build import ZooResult, build_zoo, default_cache_dir
from lineage.zoo.evaluate import evaluate
from lineage.zoo.plan import Node, plan_zoo
from lineage.zoo.presets import PRESETS
from lineage.zoo.spec import ZooSpec, load_spec, parse_spec
from lineage.zoo.tasks import TASKS, get_task
from lineage.zoo.truth import load_ground_truth

__all__ = [
    "PRESETS",
    "TASKS",
    "Node",
    "ZooResult",
    "ZooSpec",
    "build_zoo",
    "default_cache_dir",
    "evaluate",
    "get_task",
    "load_ground_truth",
    "load_spec",
    "parse_spec",
    "plan_zoo",
]
