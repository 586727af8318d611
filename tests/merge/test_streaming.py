"""Streaming output and input: the shard writer holds no tensor, a released tensor's
mapped pages leave the process, and what is written is a valid safetensors file."""

from __future__ import annotations

import gc
import json
import struct
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lineage.merge import merge_models, output
from lineage.weights import open_model
from tests.merge._helpers import load_all

SMAPS = Path("/proc/self/smaps")


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "a.weight": torch.randn(3, 4, generator=g),
        "b.odd_bf16": torch.randn(5, generator=g).to(torch.bfloat16),  # 10 bytes: misaligns
        "c.ids": torch.arange(7, dtype=torch.int64),
        "d.mask": torch.tensor([True, False, True]),
        "e.scalar": torch.tensor(2.5, dtype=torch.float16),
        "f.empty": torch.zeros(0, 4),
        "g.f64": torch.randn(2, 2, generator=g, dtype=torch.float64),
    }


def _specs(tensors):
    return {n: output.TensorSpec(t.dtype, tuple(t.shape)) for n, t in tensors.items()}


def _header(path: Path) -> tuple[int, dict]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return 8 + n, json.loads(raw[8 : 8 + n])


def test_tensors_arriving_in_any_order_make_valid_aligned_shards(tmp_path):
    tensors = _tensors()
    names = list(tensors)
    shards = [names[:4], names[4:]]
    with output.ShardWriter(tmp_path, shards, _specs(tensors)) as writer:
        for name in reversed(names):
            writer.add(name, tensors[name])
        files = writer.finish()
    assert files == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = json.loads((tmp_path / output.INDEX_NAME).read_text())
    assert index["weight_map"] == {n: files[0] if n in shards[0] else files[1] for n in names}
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in tensors.values())
    for file, group in zip(files, shards, strict=True):
        back = load_file(str(tmp_path / file))  # the reference reader accepts the file
        assert sorted(back) == sorted(group)
        assert all(torch.equal(back[n], tensors[n]) and back[n].dtype == tensors[n].dtype
                   for n in group)
        start, header = _header(tmp_path / file)
        assert start % 8 == 0 and header["__metadata__"] == {"format": "pt"}
        for n in group:  # every tensor starts at a multiple of its element size
            assert (start + header[n]["data_offsets"][0]) % tensors[n].element_size() == 0
    merged = load_all(tmp_path)  # and lineage's own reader, through the index
    assert all(torch.equal(merged[n], tensors[n]) for n in names)


def test_bytes_are_on_disk_as_soon_as_a_tensor_is_added_and_the_writer_keeps_none(tmp_path):
    tensors = _tensors()
    with output.ShardWriter(tmp_path, [list(tensors)], _specs(tensors)) as writer:
        t = tensors.pop("a.weight").clone()
        expect = t.clone()
        alive = weakref.ref(t)
        writer.add("a.weight", t)
        del t
        gc.collect()
        assert alive() is None  # not buffered until the shard is full
        start, header = _header(tmp_path / "model.safetensors")
        begin, end = header["a.weight"]["data_offsets"]
        on_disk = (tmp_path / "model.safetensors").read_bytes()[start + begin : start + end]
        assert torch.equal(torch.frombuffer(bytearray(on_disk), dtype=torch.float32)
                           .reshape(3, 4), expect)
        for name, x in tensors.items():
            writer.add(name, x)
        writer.finish()


def test_a_tensor_unlike_its_promise_or_a_missing_one_is_refused(tmp_path):
    tensors = _tensors()
    with output.ShardWriter(tmp_path, [list(tensors)], _specs(tensors)) as writer:
        with pytest.raises(RuntimeError, match="promised torch.float32"):
            writer.add("a.weight", tensors["a.weight"].double())
        with pytest.raises(RuntimeError, match=r"promised .* \[3, 4\]"):
            writer.add("a.weight", tensors["a.weight"].reshape(4, 3))
        writer.add("a.weight", tensors["a.weight"])
        with pytest.raises(RuntimeError, match="written twice"):
            writer.add("a.weight", tensors["a.weight"])
        with pytest.raises(RuntimeError, match="no tensor for"):
            writer.finish()


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in SMAPS.read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux /proc/self/smaps")
def test_release_drops_a_tensors_pages_and_it_reads_the_same_afterwards(tmp_path):
    g = torch.Generator().manual_seed(0)
    big = {"x": torch.randn(1024, 1024, generator=g), "y": torch.randn(256, generator=g)}
    path = tmp_path / "model.safetensors"
    save_file(big, str(path))
    with open_model(path) as m:
        assert float(m.tensor("x").sum()) == pytest.approx(float(big["x"].sum()), rel=1e-4)
        assert _mapped_kb(path) >= 4000  # 4 MB of float32 paged in by the sum
        m.release("x")
        assert _mapped_kb(path) < 100
        assert torch.equal(m.tensor("x"), big["x"])  # read again from the file


def test_a_merge_to_bfloat16_streams_mixed_dtypes_into_a_file_safetensors_reads(tmp_path):
    g = torch.Generator().manual_seed(1)
    base = {"w": torch.randn(33, 7, generator=g), "ids": torch.arange(5),
            "n": torch.randn(7, generator=g).to(torch.bfloat16)}
    ft = {**base, "w": base["w"] + 0.1, "n": (base["n"].float() - 0.25).to(torch.bfloat16)}
    for name, state in (("base", base), ("ft", ft)):
        (tmp_path / name).mkdir()
        save_file(state, str(tmp_path / name / "model.safetensors"))
    recipe = {"merge_method": "linear", "dtype": "bfloat16",
              "models": [{"model": str(tmp_path / "base"), "parameters": {"weight": 1.0}},
                         {"model": str(tmp_path / "ft"), "parameters": {"weight": 3.0}}]}
    merge_models(recipe, tmp_path / "out", progress=False)
    out = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert out["w"].dtype == torch.bfloat16 and out["n"].dtype == torch.bfloat16
    assert torch.equal(out["w"], (base["w"] + 0.075).to(torch.bfloat16))
    assert torch.equal(out["n"], (base["n"].float() - 0.1875).to(torch.bfloat16))
    assert torch.equal(out["ids"], torch.arange(5))  # integers copied as stored


def test_a_layer_read_again_after_its_pages_were_released_has_its_values(tmp_path):
    """Overlapping slices of one model: layer 1 is merged twice, the second time after
    the first merge released its pages; both copies are the stored values."""
    from tests.merge.test_recipe_language import llama_like

    a = llama_like(tmp_path / "a", 5)
    recipe = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(a), "layer_range": [0, 2]}]},
        {"sources": [{"model": str(a), "layer_range": [1, 3]}]}]}
    got = load_all(merge_models(recipe, tmp_path / "dup", progress=False).out_dir)
    src = load_all(a)
    for out_layer, layer in {0: 0, 1: 1, 2: 1, 3: 2}.items():
        for part in ("self_attn.q_proj.weight", "mlp.up_proj.weight"):
            assert torch.equal(got[f"model.layers.{out_layer}.{part}"],
                               src[f"model.layers.{layer}.{part}"])
