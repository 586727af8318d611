"""Fingerprints: exact per-tensor moments, content hashes and linear sketches."""

from lineage.fingerprint.content_hash import content_hash
from lineage.fingerprint.model import ModelFingerprint, fingerprint_model
from lineage.fingerprint.moments import Moments, tensor_moments
from lineage.fingerprint.sketch import (
    DEFAULT_WIDTH,
    fold_into_model_sketch,
    sketch_plan,
    sketch_tensor,
    sketch_width,
)
from lineage.fingerprint.tensor import TensorFingerprint, fingerprint_values

__all__ = [
    "DEFAULT_WIDTH",
    "ModelFingerprint",
    "Moments",
    "TensorFingerprint",
    "content_hash",
    "fingerprint_model",
    "fingerprint_values",
    "fold_into_model_sketch",
    "sketch_plan",
    "sketch_tensor",
    "sketch_width",
    "tensor_moments",
]
