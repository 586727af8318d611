"""Every malformation of a safetensors header is refused with the file and the problem."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lineage.errors import MalformedWeightsError
from lineage.weights import open_model, read_header


def _write(
    path: Path,
    header: object,
    data: bytes = b"",
    raw_header: bytes | None = None,
    length: int | None = None,
) -> Path:
    body = raw_header if raw_header is not None else json.dumps(header).encode()
    prefix = struct.pack("<Q", len(body) if length is None else length)
    path.write_bytes(prefix + body + data)
    return path


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


CASES = {
    "huge_length": (dict(header={}, length=1 << 40), "exceeds"),
    "length_past_end": (dict(header={}, length=500), "runs past the end"),
    "not_json": (dict(raw_header=b"{not json"), "not valid UTF-8 JSON"),
    "not_utf8": (dict(raw_header=b"\xff\xfe{}"), "not valid UTF-8 JSON"),
    "not_object": (dict(header=[1, 2]), "expected an object"),
    "unknown_dtype": (dict(header={"w": _entry(dtype="F128")}, data=bytes(8)), "unknown dtype"),
    "bad_shape": (dict(header={"w": _entry(shape=(-1,))}, data=bytes(8)), "shape"),
    "float_shape": (dict(header={"w": {**_entry(), "shape": [2.0]}}, data=bytes(8)), "shape"),
    "offsets_not_pair": (
        dict(header={"w": {**_entry(), "data_offsets": [0]}}, data=bytes(8)),
        "data_offsets",
    ),
    "offsets_reversed": (dict(header={"w": _entry(offsets=(8, 0))}, data=bytes(8)), "data_offsets"),
    "span_mismatch": (
        dict(header={"w": _entry(shape=(3,))}, data=bytes(8)),
        "needs 12 bytes but data_offsets span 8",
    ),
    "truncated": (
        dict(header={"w": _entry(shape=(4,), offsets=(0, 16))}, data=bytes(8)),
        "file truncated",
    ),
    "overlap": (
        dict(header={"a": _entry(), "b": _entry(offsets=(4, 12))}, data=bytes(12)),
        "overlaps",
    ),
    "bad_metadata": (dict(header={"__metadata__": {"k": 1}}), "__metadata__"),
    "entry_not_object": (dict(header={"w": 3}), "not an object"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_header_is_refused_with_file_and_reason(tmp_path, case):
    kwargs, expected = CASES[case]
    header = kwargs.pop("header", {})
    path = _write(tmp_path / f"{case}.safetensors", header, **kwargs)
    with pytest.raises(MalformedWeightsError) as err:
        read_header(path)
    text = str(err.value)
    assert str(path) in text
    assert expected in text
    # The model-level entry point refuses it the same way.
    with pytest.raises(MalformedWeightsError):
        open_model(path)


@pytest.mark.parametrize("content", [b"", b"\x01\x02\x03"])
def test_file_shorter_than_the_length_prefix_is_refused(tmp_path, content):
    path = tmp_path / "short.safetensors"
    path.write_bytes(content)
    with pytest.raises(MalformedWeightsError, match="too short"):
        read_header(path)


def test_valid_hand_made_file_reads_back(tmp_path):
    data = struct.pack("<2f", 1.5, -2.0) + struct.pack("<3h", 1, -2, 3)
    header = {"a": _entry(), "b": _entry("I16", (3,), (8, 14)), "__metadata__": {"k": "v"}}
    path = _write(tmp_path / "ok.safetensors", header, data=data)
    parsed = read_header(path)
    assert parsed.metadata == {"k": "v"}
    assert [t.name for t in parsed.tensors.values()] == ["a", "b"]
    with open_model(path) as model:
        assert model.tensor("a").tolist() == [1.5, -2.0]
        assert model.tensor("b").tolist() == [1, -2, 3]


def test_shard_index_cannot_escape_the_folder(tmp_path):
    outside = tmp_path / "secret.safetensors"
    _write(outside, {"w": _entry()}, data=bytes(8))
    folder = tmp_path / "model"
    folder.mkdir()
    index = {"weight_map": {"w": "../secret.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(MalformedWeightsError, match="not a plain file name"):
        open_model(folder)


def test_duplicate_tensor_across_shards_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for shard in ("a.safetensors", "b.safetensors"):
        _write(folder / shard, {"w": _entry()}, data=bytes(8))
    index = {"weight_map": {"w": "a.safetensors", "w2": "b.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(MalformedWeightsError, match="appears in both"):
        open_model(folder)
