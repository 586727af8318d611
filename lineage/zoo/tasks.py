"""Task registry: a task name -> a task with train batches, a loss and a held-out score."""

from __future__ import annotations

import functools
from typing import Protocol

import torch

from lineage.errors import UnknownNameError
from lineage.zoo.denoise import DENOISE_TASKS, DenoiseTask
from lineage.zoo.digits import DIGIT_TASKS, DigitsTask
from lineage.zoo.text import GENERAL, TEXT_TASKS, TextTask

TASKS = DIGIT_TASKS + TEXT_TASKS + DENOISE_TASKS
FAMILY_OF_ARCH = {
    "vit": "image", "llama": "text", "gpt2": "text", "bert": "text", "unet": "denoise"
}
ROOT_TASK = {"image": "digits", "text": "text-general", "denoise": "denoise-digits"}
FAMILY_TASKS = {"image": DIGIT_TASKS, "text": TEXT_TASKS, "denoise": DENOISE_TASKS}


class Task(Protocol):
    name: str
    family: str

    def train_batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]: ...

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def score(self, model: torch.nn.Module) -> float: ...


@functools.cache
def get_task(name: str) -> Task:
    """The task called `name` (cached: its data is built once per process)."""
    if name in DIGIT_TASKS:
        return DigitsTask(name)
    if name in TEXT_TASKS:
        return TextTask(name)
    if name in DENOISE_TASKS:
        return DenoiseTask(name)
    raise UnknownNameError.of("zoo task", name, TASKS)


def task_pool(arch: str) -> tuple[str, ...]:
    """Fine-tuning tasks for an architecture: its family's tasks minus what roots learn."""
    family = FAMILY_OF_ARCH[arch]
    names = FAMILY_TASKS[family]
    pretrained = {ROOT_TASK[family], *(f"text-{d}" for d in GENERAL)}
    return tuple(n for n in names if n not in pretrained)
