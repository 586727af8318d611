"""Parse and validate a safetensors header before trusting any offset or shape.

A safetensors file is: 8 bytes little-endian header length N, N bytes of JSON, then the
data buffer. The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]}
relative to the buffer, plus an optional "__metadata__" dict of strings. Weights are
untrusted input: every field is checked here so later code can index blindly.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from lineage.errors import MalformedMetadataError, MalformedWeightsError
from lineage.weights.dtypes import SAFETENSORS_DTYPES
from lineage.weights.untrusted import load_json

# The reference implementation refuses headers over 100 MB; so do we.
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Shapes: torch and Arrow hold dims and element counts as int64. Every dim, and the
# product of the non-zero dims (what a zero-size tensor would have if a 0 were a 1),
# must fit, so no later arithmetic or allocation can overflow.
MAX_NDIM = 32
MAX_ELEMENTS = (1 << 62) - 1
FIX = "Re-download or re-export the file; it cannot be read safely as it is"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: `offset` is absolute in `file`, `nbytes` long."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    offset: int
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: str
    tensors: dict[str, TensorInfo]  # in data-offset order
    metadata: dict[str, str]
    data_start: int
    file_size: int


def _fail(path: str, why: str) -> MalformedWeightsError:
    return MalformedWeightsError(f"safetensors file {path}", why, FIX)


def read_header(path: str | Path) -> SafetensorsHeader:
    """Read and validate the header of the safetensors file at `path`."""
    path = str(path)
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        length = _header_length(fh.read(8), size, path)
        raw = fh.read(length)
    return parse_header(raw, path=path, file_size=size)


def header_from_bytes(data: bytes | bytearray | memoryview, path: str) -> SafetensorsHeader:
    """`read_header` of a whole file held in memory (`path` names it in errors): the
    same checks on the same bytes."""
    length = _header_length(bytes(data[:8]), len(data), path)
    return parse_header(bytes(data[8 : 8 + length]), path=path, file_size=len(data))


def _header_length(prefix: bytes, size: int, path: str) -> int:
    """The header length field of a `size`-byte file, checked against the limit and
    against the file's size."""
    if len(prefix) < 8:
        raise _fail(path, f"file is {size} bytes, too short to hold the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        # The value is not echoed: it is 8 raw bytes of whatever the file really is.
        raise _fail(path, f"its header length field exceeds the {MAX_HEADER_BYTES}-byte limit")
    if 8 + length > size:
        raise _fail(path, f"its header length field runs past the end of the {size}-byte file")
    return length


def parse_header(raw: bytes, *, path: str, file_size: int) -> SafetensorsHeader:
    """Validate header JSON bytes `raw` of a file of `file_size` bytes."""
    try:
        doc = load_json(raw, "header", max_bytes=MAX_HEADER_BYTES)
    except MalformedMetadataError as err:
        raise _fail(path, f"header is not valid UTF-8 JSON: it {err.why}") from None
    if not isinstance(doc, dict):
        raise _fail(path, f"header JSON is a {type(doc).__name__}, expected an object")
    metadata = _validate_metadata(doc.pop("__metadata__", None), path)
    data_start = 8 + len(raw)
    buffer_size = file_size - data_start
    tensors = [_validate_entry(name, entry, path, data_start) for name, entry in doc.items()]
    tensors.sort(key=lambda t: t.offset)
    _check_layout(tensors, path, data_start, buffer_size)
    return SafetensorsHeader(
        path=path,
        tensors={t.name: t for t in tensors},
        metadata=metadata,
        data_start=data_start,
        file_size=file_size,
    )


def _validate_metadata(meta: object, path: str) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise _fail(path, "__metadata__ must be an object of string keys and string values")
    return meta


def _validate_entry(name: str, entry: object, path: str, data_start: int) -> TensorInfo:
    name_shown = _short(name)
    if not isinstance(entry, dict):
        raise _fail(path, f"tensor {name_shown}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPES:
        raise _fail(path, f"tensor {name_shown}: unknown dtype {_short(dtype)}")
    _check_shape(shape, name_shown, path)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _fail(
            path, f"tensor {name_shown}: data_offsets {_short(offsets)} are not [begin, end]"
        )
    expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype][1]
    span = offsets[1] - offsets[0]
    if span != expected:
        raise _fail(
            path,
            f"tensor {name_shown}: shape {shape} x {dtype} needs {expected} bytes "
            f"but data_offsets span {span}",
        )
    return TensorInfo(name, dtype, tuple(shape), path, data_start + offsets[0], span)


def _check_shape(shape: object, name: str, path: str) -> None:
    """A list of at most MAX_NDIM non-negative ints whose non-zero product fits int64
    (checked with Python ints, which cannot overflow)."""
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _fail(
            path, f"tensor {name}: shape {_short(shape)} is not a list of non-negative ints"
        )
    if len(shape) > MAX_NDIM:
        raise _fail(
            path, f"tensor {name}: shape has {len(shape)} dims, over the limit of {MAX_NDIM}"
        )
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise _fail(
            path,
            f"tensor {name}: shape {_short(shape)} has dims whose product exceeds 2**62 "
            "(a zero-size tensor must still have representable dims)",
        )


def _short(value: object, limit: int = 80) -> str:
    """repr of an untrusted value, cut to `limit` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(tensors: list[TensorInfo], path: str, data_start: int, size: int) -> None:
    """Tensors must lie inside the buffer and must not overlap."""
    previous_end, previous_name = data_start, None
    for info in tensors:
        if info.offset < previous_end:
            raise _fail(path, f"tensor {_short(info.name)} overlaps tensor {_short(previous_name)}")
        end = info.offset + info.nbytes
        if end > data_start + size:
            raise _fail(
                path,
                f"tensor {_short(info.name)} ends at byte {end - data_start} of a "
                f"{size}-byte data buffer (file truncated?)",
            )
        previous_end, previous_name = end, info.name
