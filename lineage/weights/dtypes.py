"""Safetensors dtype names, their torch dtypes and their sizes in bytes."""

from __future__ import annotations

import torch

# name -> (torch dtype, bytes per element). BOOL is one byte in safetensors.
SAFETENSORS_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F8_E4M3": (torch.float8_e4m3fn, 1),
    "F8_E5M2": (torch.float8_e5m2, 1),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "U16": (torch.uint16, 2),
    "U32": (torch.uint32, 4),
    "U64": (torch.uint64, 8),
    "BOOL": (torch.bool, 1),
}

TORCH_TO_SAFETENSORS = {dtype: name for name, (dtype, _) in SAFETENSORS_DTYPES.items()}


def itemsize(name: str) -> int:
    return SAFETENSORS_DTYPES[name][1]


def torch_dtype(name: str) -> torch.dtype:
    return SAFETENSORS_DTYPES[name][0]


def is_float(name: str) -> bool:
    return name.startswith(("F", "BF"))
