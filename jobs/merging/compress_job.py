"""`lineage compress` / `lineage reconstruct`: TALL-mask compression with catalog ids.

Thin over lineage.merge.compress/reconstruct; references resolve through the catalog, and
each compressed model gets a ``tall-compressed`` artifact row (the bundle's folder, its
position in the bundle, lambda and the storage ratio), so a later `reconstruct` can be
found from the model's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from catalog import Catalog
from catalog.artifacts import TALL, register_artifact
from catalog.resolve import CatalogResolver
from catalog.runs import finish_run, start_run
from lineage.merge import CompressResult, MergeResult, compress, reconstruct


def compress_job(
    base: str,
    models: Sequence[str],
    out: str | Path,
    *,
    lam: float | Sequence[float] = 0.4,
    merge: str = "sum",
    density: float = 1.0,
    catalog: Catalog | None = None,
    register: bool = True,
    overwrite: bool = False,
) -> tuple[CompressResult, int]:
    """Compress ``models`` (fine-tunes of ``base``) into ``out``; returns the result and
    how many artifact rows were newly registered."""
    resolver = CatalogResolver(catalog)
    result = compress(base, list(models), out, lam=lam, merge=merge, density=density,
                      resolve=resolver, overwrite=overwrite)
    if catalog is None or not register:
        return result, 0
    run_id = start_run(catalog, "compress", {"base": base, "models": list(models),
                                             "out": str(out), "lam": result.lams})
    new = 0
    for i, ref in enumerate(models):
        params = {"base": resolver.catalog_id(base) or base, "index": i,
                  "lam": result.lams[i], "merge": merge, "density": density,
                  "ratio": round(result.ratio, 6)}
        new += register_artifact(catalog, resolver.catalog_id(ref) or ref, TALL, out, params,
                                 run_id)
    finish_run(catalog, run_id)
    return result, new


def reconstruct_job(
    compressed: str | Path,
    model: int | str,
    out: str | Path,
    *,
    base: str | None = None,
    catalog: Catalog | None = None,
    overwrite: bool = False,
) -> MergeResult:
    """Rebuild one model of a compressed bundle (by position or reference) as a folder;
    the base is resolved through the catalog like any reference."""
    index: int | str = int(model) if str(model).isdigit() else model
    return reconstruct(compressed, index, out, base=base, resolve=CatalogResolver(catalog),
                       overwrite=overwrite)
