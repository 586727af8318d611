"""Safetensors dtype names, their sizes in bytes, and (lazily) their torch dtypes.

Torch is imported only when a torch dtype is asked for: the CPU fingerprint reads
tensors with numpy and never loads torch (its import alone is ~220 MB of RSS).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# name -> (torch dtype's attribute name, bytes per element). BOOL is one byte in safetensors.
SAFETENSORS_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "U16": ("uint16", 2),
    "U32": ("uint32", 4),
    "U64": ("uint64", 8),
    "BOOL": ("bool", 1),
}


def itemsize(name: str) -> int:
    return SAFETENSORS_DTYPES[name][1]


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, SAFETENSORS_DTYPES[name][0])


@cache
def torch_to_safetensors() -> dict[torch.dtype, str]:
    """torch dtype -> safetensors name (imports torch)."""
    return {torch_dtype(name): name for name in SAFETENSORS_DTYPES}


def is_float(name: str) -> bool:
    return name.startswith(("F", "BF"))
