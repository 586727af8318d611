"""The CPU fingerprint streams each tensor in chunks through compiled kernels; its
values are the torch path's (tensor.py, the GPU path and the reference): sketch, rank
sketch, sample and hash bit for bit, moments to float64 rounding. Memory stays
bounded by a chunk, not by the tensor."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lineage.fingerprint import EvidenceOptions, fingerprint_model, fingerprint_values
from lineage.fingerprint import model as model_module
from lineage.fingerprint.content_hash import content_hash
from lineage.weights import open_model, write_safetensors

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int32,
          torch.uint8, torch.bool, torch.float8_e4m3fn]
SHAPES = [(300, 700), (9000, 40), (40, 9000), (64, 64), (70001,), (3, 1, 5), (0, 4), ()]


def _tensor(shape, dtype, gen):
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    if dtype in (torch.int32, torch.uint8):
        return torch.randint(0, 100, shape, generator=gen).to(dtype)
    values = torch.randn(shape, generator=gen) * 0.02 + 0.01
    return values.to(dtype)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 256 KiB: every tensor above spans several, cutting rows and steps."""
    monkeypatch.setattr(model_module, "CHUNK_BYTES", 1 << 18)
    monkeypatch.setattr(model_module, "THREADED_HASH_BYTES", 1 << 10)


@pytest.mark.parametrize("threads", [1, 2])
def test_streamed_fingerprint_equals_the_torch_path(tmp_path, small_chunks, threads):
    gen = torch.Generator().manual_seed(0)
    tensors = {f"t{i}.{j}": _tensor(shape, dtype, gen)
               for i, dtype in enumerate(DTYPES) for j, shape in enumerate(SHAPES)}
    tensors["nan"] = torch.tensor([1.0, float("nan"), -2.0])
    tensors["inf"] = torch.tensor([float("inf"), float("-inf"), 3.0])
    path = write_safetensors(tmp_path / "m.safetensors", tensors)
    with open_model(path) as model:
        fp = fingerprint_model(model, threads=threads, width=512)
        for t in fp.tensors:
            info = model.infos()[t.name]
            ref = fingerprint_values(t.name, info.dtype, model.tensor(t.name), "", 512)
            assert t.content_hash == content_hash(info.dtype, info.shape, model.raw(t.name))
            assert np.array_equal(t.sketch, ref.sketch, equal_nan=True), t.name
            for field in ("rank_sketch", "sample"):
                a, b = getattr(t, field), getattr(ref, field)
                same = (a is None and b is None) or np.array_equal(a, b, equal_nan=True)
                assert same, (t.name, field)
            assert (t.numel, t.shape, t.dtype) == (ref.numel, ref.shape, ref.dtype)
            for field in ("mean", "std", "kurtosis", "min", "max"):
                a, b = getattr(t, field), getattr(ref, field)
                # excess kurtosis is n*M4/M2^2 - 3: its rounding is absolute, ~3 * 1e-15
                near = pytest.approx(b, rel=1e-11, abs=1e-12 if field == "kurtosis" else 1e-15)
                assert (math.isnan(a) and math.isnan(b)) or a == near, (t.name, field, a, b)
    by_name = {t.name: t for t in fp.tensors}
    assert by_name["inf"].max == math.inf and math.isnan(by_name["nan"].max)


def test_evidence_off_leaves_the_rest_of_the_fingerprint_as_it_is(tmp_path):
    gen = torch.Generator().manual_seed(1)
    path = write_safetensors(tmp_path / "m.safetensors", {
        "a": torch.randn(200, 300, generator=gen), "b": torch.randn(50, generator=gen)})
    with open_model(path) as model:
        on_cpu = fingerprint_model(model)
        bare = fingerprint_model(model, evidence=EvidenceOptions(enabled=False))
    assert on_cpu.tensors[0].rank_sketch is not None and bare.tensors[0].rank_sketch is None
    assert np.array_equal(on_cpu.sketch, bare.sketch)


MEMORY_PROBE = """
import resource, sys
from lineage.fingerprint import fingerprint_model
from lineage.weights import open_model
path = sys.argv[1] + "/big.safetensors"
with open_model(sys.argv[1] + "/warm.safetensors") as m:  # compile, warm caches
    fingerprint_model(m, threads=2)
import gc; gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open_model(path) as m:
    fingerprint_model(m, threads=2)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


def test_memory_is_bounded_by_chunks_not_by_the_tensor(tmp_path):
    """A 96 MiB tensor is fingerprinted with peak memory growing by a fraction of it
    (chunks are unmapped once read; writing the file itself happens before `base`)."""
    write_safetensors(tmp_path / "warm.safetensors", {"w": torch.randn(512, 4096)})
    write_safetensors(tmp_path / "big.safetensors", {"w": torch.randn(6144, 4096)})
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
                         capture_output=True, text=True, check=True)
    grown_mib = int(out.stdout.split()[-1])
    assert grown_mib < 48, f"peak RSS grew by {grown_mib} MiB fingerprinting 96 MiB"
