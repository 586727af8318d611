"""Stream tensors from model weights on disk, safely (see docs in each module)."""

from lineage.weights.card import CardData, parse_front_matter
from lineage.weights.header import SafetensorsHeader, TensorInfo, read_header
from lineage.weights.metadata import ModelMetadata, architecture_signature
from lineage.weights.model import ModelWeights, open_model
from lineage.weights.writer import write_safetensors

__all__ = [
    "CardData",
    "ModelMetadata",
    "ModelWeights",
    "SafetensorsHeader",
    "TensorInfo",
    "architecture_signature",
    "open_model",
    "parse_front_matter",
    "read_header",
    "write_safetensors",
]
