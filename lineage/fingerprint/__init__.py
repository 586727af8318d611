"""Fingerprints: exact per-tensor moments, content hashes, linear sketches, and the
recovery evidence of matrices (two-sided rank sketches, coordinate samples)."""

from lineage.fingerprint.content_hash import content_hash
from lineage.fingerprint.model import ModelFingerprint, fingerprint_model
from lineage.fingerprint.moments import Moments, tensor_moments
from lineage.fingerprint.rank_sketch import RANK_WIDTH, rank_sketch, rank_sketch_shape
from lineage.fingerprint.sample import SAMPLE_SIZE, sample_positions, sample_values
from lineage.fingerprint.sketch import (
    DEFAULT_WIDTH,
    fold_into_model_sketch,
    sketch_plan,
    sketch_tensor,
    sketch_width,
)
from lineage.fingerprint.tensor import EvidenceOptions, TensorFingerprint, fingerprint_values

__all__ = [
    "DEFAULT_WIDTH",
    "RANK_WIDTH",
    "SAMPLE_SIZE",
    "EvidenceOptions",
    "ModelFingerprint",
    "Moments",
    "TensorFingerprint",
    "content_hash",
    "fingerprint_model",
    "fingerprint_values",
    "fold_into_model_sketch",
    "rank_sketch",
    "rank_sketch_shape",
    "sample_positions",
    "sample_values",
    "sketch_plan",
    "sketch_tensor",
    "sketch_width",
    "tensor_moments",
]
