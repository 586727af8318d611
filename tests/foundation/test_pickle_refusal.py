"""Pickles are refused by default and, when allowed, only loaded with weights_only."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from lineage.errors import MalformedWeightsError, UnsafeFormatError
from lineage.weights import open_model


class _Payload:
    """Unpickling this runs os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _Payload(marker)}, fh)
    return path, marker


def test_pickle_is_refused_without_opt_in(hostile_pickle):
    path, marker = hostile_pickle
    with pytest.raises(UnsafeFormatError) as err:
        open_model(path)
    assert str(path) in str(err.value) and "execute arbitrary code" in str(err.value)
    with pytest.raises(UnsafeFormatError):
        open_model(path.parent)  # a folder holding only the pickle
    assert not marker.exists()


def test_opt_in_still_never_executes_code(hostile_pickle):
    path, marker = hostile_pickle
    with pytest.raises(MalformedWeightsError, match="weights_only=True"):
        open_model(path, allow_pickle=True)
    assert not marker.exists()


def test_opt_in_reads_a_plain_state_dict(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2)}
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with open_model(path, allow_pickle=True) as model:
        assert model.kind == "pickle-file"
        assert torch.equal(model.tensor("w"), state["w"])
        assert bytes(model.raw("b")) == state["b"].numpy().tobytes()
