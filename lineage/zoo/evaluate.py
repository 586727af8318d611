"""Score any model folder on a zoo task: zoo models, and merges someone makes later.

A full-weights folder (config.json + model.safetensors, or a diffusers pipeline with a
UNet; any float dtype) loads directly;
an adapter-only folder loads its base (resolved inside the zoo) and merges the adapter.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from lineage.errors import ModelNotFoundError, SpecError
from lineage.zoo.arch import arch_of_model, is_model_dir, load_model, quiet_transformers
from lineage.zoo.tasks import FAMILY_OF_ARCH, get_task
from lineage.zoo.train import single_threaded
from lineage.zoo.truth import find_zoo_root, load_ground_truth


def evaluate(model_dir: str | Path, task: str | None = None) -> float:
    """Held-out accuracy of the model in `model_dir` on `task`.

    Without `task`, the model must sit in a built zoo (OUT/org/name) and its own training
    task from ground_truth.json is used.
    """
    quiet_transformers()
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelNotFoundError(str(path), "is not a folder", "Give a model folder")
    task = task or own_task(path)
    model = _load_any(path)
    family = FAMILY_OF_ARCH[arch_of_model(model)]
    scorer = get_task(task)
    if scorer.family != family:
        raise SpecError(
            f"task {task!r}",
            f"is a {scorer.family} task but the model takes {family} input",
            "Pick a task of the model's family",
        )
    with single_threaded():
        return scorer.score(model)


def own_task(model_dir: str | Path) -> str:
    """The training task of a model inside a built zoo, from its ground truth."""
    path = Path(model_dir)
    root = find_zoo_root(path)
    if root is None:
        raise SpecError(
            f"model {str(path)!r}",
            "is not inside a built zoo, so its task is unknown",
            "Pass a task name (--task)",
        )
    model_id = path.resolve().relative_to(root.resolve()).as_posix()
    for node in load_ground_truth(root)["nodes"]:
        if node["id"] == model_id:
            return node["task"]
    raise SpecError(f"model {model_id!r}", "is not in the zoo's ground truth", "Pass --task")


def _load_any(path: Path) -> torch.nn.Module:
    if is_model_dir(path):
        return load_model(path)
    if (path / "adapter_config.json").is_file():
        return _load_adapter(path)
    raise ModelNotFoundError(
        str(path),
        "has neither model.safetensors nor adapter_config.json",
        "Give a zoo model folder",
    )


def _load_adapter(path: Path) -> torch.nn.Module:
    from peft import PeftModel

    base_id = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
    root = find_zoo_root(path)
    if root is None or not (root / base_id).is_dir():
        raise ModelNotFoundError(
            f"adapter base {base_id!r}",
            "is not a folder of the zoo holding the adapter",
            "Evaluate adapters inside their zoo folder",
        )
    base = load_model(root / base_id)
    with warnings.catch_warnings():  # PEFT calls a deprecated transformers API
        warnings.simplefilter("ignore", FutureWarning)
        return PeftModel.from_pretrained(base, path).merge_and_unload().eval()
