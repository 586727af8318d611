"""Reading a catalog back for comparisons, and building crawl options for tests."""

from __future__ import annotations

import re
from pathlib import Path

from catalog import Catalog
from catalog.query import run_query
from jobs.crawl.options import CrawlOptions
from lineage.hub.retry import RetryPolicy
from lineage.weights.card import parse_front_matter

FAST = RetryPolicy(attempts=6, base_s=0.02, cap_s=0.1)

MODEL_COLUMNS = (
    "model_id, revision, kind, arch_signature, model_type, n_params, n_bytes, dtype, "
    "card_base_models, card_relation, license, adapter_base, adapter_rank, sketch"
)
TENSOR_COLUMNS = (
    "model_id, revision, name, shape, dtype, content_hash, mean, std, kurtosis, sketch, "
    "rank_sketch, rank_width, sample, sample_size"
)


def options(hub, seeds, catalog: Path | None = None, **kw) -> CrawlOptions:
    base = dict(
        seeds=list(seeds),
        endpoint=hub.endpoint,
        workers=2,
        cpus_per_worker=0.5,
        batch_size=4,
        progress=False,
        retry=FAST,
        api_per_5min=0,
        resolve_per_5min=0,
    )
    if catalog is not None:
        base["cache_dir"] = catalog / "cache"
    return CrawlOptions(**{**base, **kw})


def rows(catalog: Catalog, table: str, columns: str) -> list[tuple]:
    result = run_query(catalog, f"SELECT {columns} FROM {table} ORDER BY ALL")
    return [tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in result.rows]


def models(catalog: Catalog) -> list[tuple]:
    return rows(catalog, "models", MODEL_COLUMNS)


def tensors(catalog: Catalog) -> list[tuple]:
    return rows(catalog, "tensors", TENSOR_COLUMNS)


def edges(catalog: Catalog) -> set[tuple[str, str, str]]:
    return set(rows(catalog, "edges", "parent, child, relation"))


def duplicates(catalog: Catalog) -> dict[str, int]:
    """Rows that appear more than once per key, per table (all zero in a sound catalog)."""
    sql = {
        "models": "SELECT count(*) - count(DISTINCT (model_id, revision)) FROM models",
        "tensors": "SELECT count(*) - count(DISTINCT (model_id, revision, name)) FROM tensors",
        "edges": "SELECT count(*) - count(DISTINCT (parent, child, relation)) FROM edges",
    }
    return {k: run_query(catalog, q).rows[0][0] for k, q in sql.items()}


def documented_family(zoo: Path, seed: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The seed's connected component over the edges the READMEs declare (ground truth
    for a crawler that follows cards), read straight from the files."""
    declared: set[tuple[str, str]] = set()
    for readme in zoo.glob("*/*/README.md"):
        child = readme.parent.relative_to(zoo).as_posix()
        card = parse_front_matter(readme.read_text())
        bases = card.get("base_model") or []
        for parent in [bases] if isinstance(bases, str) else bases:
            declared.add((parent, child))
    family, frontier = {seed}, [seed]
    while frontier:
        node = frontier.pop()
        for parent, child in declared:
            for nxt in ((child,) if parent == node else ()) + ((parent,) if child == node else ()):
                if nxt not in family:
                    family.add(nxt)
                    frontier.append(nxt)
    return family, {e for e in declared if e[1] in family}


def full_downloads(hub, pattern: str = r"\.safetensors$") -> list[str]:
    """Paths of whole-file GETs (no Range header) of weight files: real weight fetches."""
    regex = re.compile(pattern)
    return [
        r.path
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path and not r.range and regex.search(r.path)
    ]


def weight_reads(hub, pattern: str = r"\.safetensors$") -> list[str]:
    """Paths of every GET of a weight file, ranged or whole: a small model's weights are
    read whole by the probe's first range read and never fetched again."""
    regex = re.compile(pattern)
    return [
        r.path
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path and regex.search(r.path)
    ]
