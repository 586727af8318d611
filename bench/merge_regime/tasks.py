"""Eight digit tasks, a broadly pre-trained root, frozen per-task heads, fine-tuned bodies.

The protocol of the task-arithmetic / TIES / TALL / consensus papers in miniature:
- the root is pre-trained on *all* tasks mixed (8 pixel transforms of sklearn's 8x8
  digits, one shared digit head), so every task is near it in weight space;
- each task gets its own head, fitted on the root's features (a linear probe, standing in
  for CLIP's zero-shot heads) and frozen;
- each specialist fine-tunes the body only, at a small learning rate;
- merges combine bodies only; each task is scored with its own head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

WIDTH = int(__import__("os").environ.get("MERGE_REGIME_WIDTH", "128"))
# Each task's images reach the body through its own fixed random "sensor" (an orthonormal
# 64 -> SENSOR_DIM map), as different datasets have different input statistics; 0 feeds
# the 64 pixels directly. See load_tasks.
SENSOR_DIM = int(__import__("os").environ.get("MERGE_REGIME_SENSOR", "256"))
IN_DIM = SENSOR_DIM or 64
TASKS = ("plain", "rot90", "rot180", "rot270", "mirror", "flipud", "transpose", "invert")


def transform(x: np.ndarray, task: str) -> np.ndarray:
    """x [n, 8, 8] in [0, 1] -> the task's view of it."""
    ops = {"plain": lambda a: a, "rot90": lambda a: np.rot90(a, 1, (1, 2)),
           "rot180": lambda a: np.rot90(a, 2, (1, 2)), "rot270": lambda a: np.rot90(a, 3, (1, 2)),
           "mirror": lambda a: a[:, :, ::-1], "flipud": lambda a: a[:, ::-1, :],
           "transpose": lambda a: a.transpose(0, 2, 1), "invert": lambda a: 1.0 - a}
    return np.ascontiguousarray(ops[task](x)).reshape(len(x), 64).astype(np.float32)


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class TaskData:
    pretrain: Split
    train: Split
    val: Split
    test: Split


def load_tasks(seed: int = 0) -> dict[str, TaskData]:
    """Per task a disjoint pretrain / train / val / test split of the 1797 digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    out = {}
    for i, task in enumerate(TASKS):
        order = np.random.default_rng(seed + i).permutation(len(images))
        cuts = np.split(order, [int(0.35 * len(order)), int(0.7 * len(order)),
                                int(0.8 * len(order))])
        x = transform(images, task)
        if SENSOR_DIM:
            q, _ = np.linalg.qr(np.random.default_rng(1000 + i).standard_normal((SENSOR_DIM, 64)))
            x = (x @ q.T.astype(np.float32) * (SENSOR_DIM / 64) ** 0.5).astype(np.float32)
        parts = [Split(torch.from_numpy(x[c]), torch.from_numpy(d.target[c]).long())
                 for c in cuts]
        out[task] = TaskData(*parts)
    return out


class Body(torch.nn.Module):
    """A small residual MLP body: 64 -> WIDTH features, three layers."""

    def __init__(self, width: int = WIDTH, n_layers: int = 3) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(IN_DIM, width)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(n_layers))
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.embed(x))
        for layer in self.layers:
            h = h + torch.nn.functional.gelu(layer(h))
        return self.norm(h)


def _batches(split: Split, batch: int, gen: torch.Generator):
    order = torch.randperm(len(split.y), generator=gen)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        yield split.x[idx], split.y[idx]


def pretrain_root(data: dict[str, TaskData], steps: int, seed: int = 0) -> Body:
    """All tasks mixed, one shared head (then thrown away)."""
    torch.manual_seed(seed)
    body, head = Body(), torch.nn.Linear(WIDTH, 10)
    mixed = Split(torch.cat([d.pretrain.x for d in data.values()]),
                  torch.cat([d.pretrain.y for d in data.values()]))
    opt = torch.optim.AdamW([*body.parameters(), *head.parameters()], lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    while step < steps:
        for x, y in _batches(mixed, 128, gen):
            loss = torch.nn.functional.cross_entropy(head(body(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
    return body


def probe_head(body: Body, split: Split, steps: int = 300) -> torch.nn.Linear:
    """A linear probe on the frozen root features: the task's frozen head."""
    with torch.no_grad():
        feats = body(split.x)
    head = torch.nn.Linear(feats.shape[1], 10)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(feats), split.y) + 1e-3 * (
            head.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    for p in head.parameters():
        p.requires_grad_(False)
    return head


def finetune(root: Body, head: torch.nn.Linear, split: Split, *, epochs: int, lr: float,
             seed: int) -> Body:
    """Fine-tune a copy of the body with the task's frozen head."""
    torch.manual_seed(seed)
    body = Body()
    body.load_state_dict(root.state_dict())
    opt = torch.optim.SGD(body.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for x, y in _batches(split, 32, gen):
            loss = torch.nn.functional.cross_entropy(head(body(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return body


@torch.no_grad()
def accuracy(state: dict[str, torch.Tensor], head: torch.nn.Linear, split: Split) -> float:
    body = Body()
    body.load_state_dict({k: v.float() for k, v in state.items()})
    return float((head(body(split.x)).argmax(1) == split.y).float().mean())


def save_body(body_or_state, folder: Path) -> Path:
    state = body_or_state if isinstance(body_or_state, dict) else body_or_state.state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in state.items()},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "digit-mlp",
                                                    "num_hidden_layers": 3}))
    return folder


def fisher_diag(body: Body, head: torch.nn.Linear, split: Split, n: int = 256,
                seed: int = 0) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the body, labels sampled from the model's own predictions."""
    gen = torch.Generator().manual_seed(seed)
    out = {k: torch.zeros_like(v) for k, v in body.state_dict().items()}
    for i in range(min(n, len(split.y))):
        logits = head(body(split.x[i:i + 1]))
        y = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[0]
        body.zero_grad()
        torch.nn.functional.cross_entropy(logits, y).backward()
        for k, p in body.named_parameters():
            out[k] += p.grad.detach() ** 2
    return {k: v / min(n, len(split.y)) for k, v in out.items()}
