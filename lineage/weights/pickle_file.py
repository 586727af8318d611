"""Opt-in reading of pickle checkpoints, only through torch.load(weights_only=True).

weights_only=True restricts unpickling to tensors and plain containers, so a hostile
file cannot run code; it is still only used when the user asked for it explicitly.
Torch is imported when a pickle is opened, never for safetensors-only work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lineage.errors import MalformedWeightsError
from lineage.weights.dtypes import torch_to_safetensors
from lineage.weights.header import TensorInfo

if TYPE_CHECKING:
    import torch


class PickleFile:
    def __init__(self, path: str | Path) -> None:
        import torch

        self.path = str(path)
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for a bad/hostile pickle
            raise MalformedWeightsError(
                f"pickle file {self.path}",
                f"was refused by torch.load(weights_only=True): {str(err).splitlines()[0]}",
                "Convert the checkpoint to safetensors with a trusted tool",
            ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise MalformedWeightsError(
                f"pickle file {self.path}", "does not hold a dict of tensors", ""
            )
        self._state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        self.tensors = {
            name: TensorInfo(
                name,
                torch_to_safetensors()[t.dtype],
                tuple(t.shape),
                self.path,
                -1,
                t.numel() * t.element_size(),
            )
            for name, t in self._state.items()
        }

    def prefetch(self, name: str) -> None:
        """Nothing to do: torch.load already mapped the whole file."""

    def prefetch_range(self, name: str, start: int, end: int) -> None:
        """Nothing to do: the tensors are in memory."""

    def release(self, name: str, start: int = 0, end: int | None = None) -> None:
        """Nothing to do: torch.load owns the memory of the whole file."""

    def tensor(self, name: str) -> torch.Tensor:
        return self._state[name]

    def raw(self, name: str) -> memoryview:
        import torch

        tensor = self._state[name].contiguous()
        return memoryview(tensor.view(torch.uint8).numpy()).cast("B")

    def close(self) -> None:
        self._state = {}
