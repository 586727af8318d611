"""The CPU indexing path never imports torch: numpy and numba read and fingerprint the
safetensors bytes (torch's import alone is ~220 MB of RSS, most of what kept `lineage
index` above its 300 MB bound). Torch loads only for pickles (opt-in), GPUs and the
torch reference path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from catalog import Catalog
from catalog.query import run_query
from lineage.fingerprint import fingerprint_model
from lineage.fingerprint.stream import _f8_table
from lineage.weights import open_model, write_safetensors

# Runs the real CLI entry point, then says whether torch was imported along the way.
INDEX_AND_REPORT = """
import json, sys
from jobs.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def _model(folder):
    """A model with every dtype the stream widens differently, and one matrix over 1 MiB
    (so that with two threads given the second thread hashes and folds it)."""
    gen = torch.Generator().manual_seed(3)
    tensors = {
        "big.weight": torch.randn(600, 500, generator=gen) * 0.02,
        "q.weight": (torch.randn(96, 80, generator=gen) * 0.02).to(torch.bfloat16),
        "k.weight": (torch.randn(80, 96, generator=gen) * 0.02).to(torch.float16),
        "e4.weight": torch.randn(40, 30, generator=gen).to(torch.float8_e4m3fn),
        "e5.weight": torch.randn(30, 40, generator=gen).to(torch.float8_e5m2),
        "norm.weight": torch.ones(500, dtype=torch.float64),
        "ids": torch.arange(12, dtype=torch.int64),
        "mask": torch.rand(7, generator=gen) > 0.5,
    }
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    return folder


def test_lineage_index_never_imports_torch(tmp_path):
    folder = _model(tmp_path / "m")
    catalog_dir = tmp_path / "catalog"
    done = subprocess.run(
        [sys.executable, "-c", INDEX_AND_REPORT, "index", str(folder), "--json",
         "--catalog", str(catalog_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    *report, last = done.stdout.strip().splitlines()
    assert json.loads(last) == {"code": 0, "torch": False}
    assert json.loads("\n".join(report))["indexed"] == ["m"]

    # What the torch-free process stored is the fingerprint of this (torch-loaded) one.
    with open_model(folder) as model:
        expected = {t.name: t for t in fingerprint_model(model).tensors}
    stored = run_query(Catalog(catalog_dir, create=False),
                       "SELECT name, content_hash, sketch, rank_sketch, sample FROM tensors")
    assert {row[0] for row in stored.rows} == set(expected)
    for name, digest, sketch, rank, sample in stored.rows:
        want = expected[name]
        assert digest == want.content_hash
        assert np.array_equal(np.asarray(sketch, np.float32), want.sketch)
        if want.rank_sketch is None:
            assert rank is None and sample is None
        else:
            assert np.array_equal(np.asarray(rank, np.float32), want.rank_sketch)
            assert np.array_equal(np.asarray(sample, np.float32), want.sample, equal_nan=True)
    assert expected["e5.weight"].rank_sketch is not None  # the evidence was computed


@pytest.mark.parametrize(("name", "dtype"), [("F8_E4M3", torch.float8_e4m3fn),
                                             ("F8_E5M2", torch.float8_e5m2)])
def test_eight_bit_floats_widen_as_torch_does_bit_for_bit(name, dtype):
    """All 256 codes, NaN payloads, infinities and signed zeros included."""
    codes = torch.arange(256, dtype=torch.uint8).view(dtype).to(torch.float32).numpy()
    assert np.array_equal(_f8_table(name).view(np.uint32), codes.view(np.uint32))
