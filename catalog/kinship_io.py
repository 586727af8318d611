"""Read what the kinship job needs from the catalog and shape what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from catalog.schema import KINSHIP
from catalog.store import Catalog

MODEL_SKETCHES = """
SELECT model_id, revision, arch_signature, source, sketch
FROM current_models WHERE sketch IS NOT NULL AND len(sketch) = ?
ORDER BY arch_signature, model_id
"""

TENSOR_HASHES = """
SELECT t.model_id, t.name, t.content_hash, t.std
FROM tensors t JOIN current_models m USING (model_id, revision)
"""


@dataclass(frozen=True)
class ModelSketches:
    ids: list[str]
    revisions: list[str]
    arch: list[str]
    sources: list[str]
    matrix: np.ndarray  # float32 [n_models, width]


def load_model_sketches(catalog: Catalog, width: int) -> ModelSketches:
    """Model-level sketches of the newest revision of every model, grouped by arch."""
    with catalog.reader() as con:
        rows = con.execute(MODEL_SKETCHES, [width]).fetchall()
    matrix = np.asarray([r[4] for r in rows], dtype=np.float32).reshape(len(rows), width)
    return ModelSketches(
        ids=[r[0] for r in rows],
        revisions=[r[1] for r in rows],
        arch=[r[2] for r in rows],
        sources=[r[3] for r in rows],
        matrix=matrix,
    )


def load_tensor_hashes(catalog: Catalog) -> list[tuple[str, str, str, float]]:
    with catalog.reader() as con:
        return con.execute(TENSOR_HASHES).fetchall()


def kinship_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=KINSHIP)
