"""Model references -> local folders: catalog ids first, then local paths.

A recipe (or a CLI argument) names a model either by its catalog id or by a path. The
catalog knows where each model came from (`current_models.source`):
- ``local:<abs path>``: that folder (an error if it has since moved or been deleted);
- a Hub source (``hub:<endpoint>``, as `lineage crawl` writes it; the model id is the
  repo id): the crawler's own cache (``CATALOG/.crawl-cache/org--name/<sha[:16]>``,
  filled by ``lineage crawl --keep-weights``), else the Hugging Face download cache
  (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``) at the indexed
  revision when that snapshot is there, else the snapshot ``refs/main`` points to.
A reference the catalog does not know is tried as a local path. Every failure names the
model and says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from catalog.store import Catalog
from lineage.errors import LineageError, ModelNotFoundError

LOCAL = "local:"


def hub_cache_dir() -> Path:
    """Where huggingface_hub puts downloads (its own environment variables, its default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def cached_snapshot(cache: Path, repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of a Hub repo, or None when it was never downloaded."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if revision and (snapshots / revision).is_dir():
        return snapshots / revision
    main = repo / "refs" / "main"
    if main.is_file() and (snapshots / main.read_text().strip()).is_dir():
        return snapshots / main.read_text().strip()
    return None


def _lookup(catalog: Catalog, model_id: str) -> tuple[str, str] | None:
    with catalog.reader() as con:
        row = con.execute(
            "SELECT source, revision FROM current_models WHERE model_id = ?", [model_id]
        ).fetchone()
    return None if row is None else (row[0], row[1])


def catalog_id_of(catalog: Catalog, ref: str) -> str | None:
    """The catalog id a reference stands for: the id itself, or the model indexed from
    that local path; None when the catalog knows neither."""
    if _lookup(catalog, ref) is not None:
        return ref
    path = Path(ref).expanduser()
    if not path.exists():
        return None
    with catalog.reader() as con:
        row = con.execute(
            "SELECT model_id FROM current_models WHERE source = ? ORDER BY model_id LIMIT 1",
            [LOCAL + str(path.resolve())],
        ).fetchone()
    return None if row is None else row[0]


def crawled_folder(crawl_cache: Path, model_id: str, revision: str) -> Path | None:
    """The folder `lineage crawl --keep-weights` left for this model revision, if any."""
    from lineage.hub.ids import local_dir_name
    from lineage.weights.discover import is_model_folder

    try:
        folder = crawl_cache / local_dir_name(model_id) / (revision or "")[:16]
    except LineageError:  # not a valid repo id: never crawled
        return None
    return folder if revision and is_model_folder(folder) else None


def _from_source(model_id: str, source: str, revision: str, hub_cache: Path,
                 crawl_cache: Path | None) -> Path:
    if source.startswith(LOCAL):
        path = Path(source[len(LOCAL):])
        if path.exists():
            return path
        raise ModelNotFoundError(
            f"model {model_id!r}",
            f"is cataloged at {path}, which no longer exists",
            "Restore the folder, or re-index it where it now lives (`lineage index PATH`)",
        )
    repo_id = model_id  # a Hub source names the endpoint; the id is the repo id
    crawled = crawled_folder(crawl_cache, model_id, revision) if crawl_cache else None
    snapshot = crawled or cached_snapshot(hub_cache, repo_id, revision)
    if snapshot is not None:
        return snapshot
    raise ModelNotFoundError(
        f"model {model_id!r}",
        f"comes from {source} and is not in the download cache {hub_cache}",
        f"Download it first (`lineage crawl --keep-weights`, or `huggingface-cli download "
        f"{repo_id}`, or set HF_HUB_CACHE to the cache that holds it), or pass a local path",
    )


@dataclass
class CatalogResolver:
    """Callable ``ref -> local Path``; usable as ``resolve=`` of merge_models/compress.

    ``catalog`` may be None (paths only). Answers are memoised per reference, so a merge
    that resolves the same model several times opens the catalog once.
    """

    catalog: Catalog | None = None
    hub_cache: Path = field(default_factory=hub_cache_dir)
    crawl_cache: Path | None = None  # default: CATALOG/.crawl-cache
    _seen: dict[str, Path] = field(default_factory=dict, repr=False)

    def __call__(self, ref: str | Path) -> Path:
        ref = str(ref)
        if ref not in self._seen:
            self._seen[ref] = self._resolve(ref)
        return self._seen[ref]

    def _resolve(self, ref: str) -> Path:
        found = _lookup(self.catalog, ref) if self.catalog is not None else None
        if found is not None:
            crawl = self.crawl_cache or self.catalog.root / ".crawl-cache"
            return _from_source(ref, found[0], found[1], Path(self.hub_cache), Path(crawl))
        path = Path(ref).expanduser()
        if path.exists():
            return path.resolve()
        where = f"in catalog {self.catalog.root}" if self.catalog else "(no catalog given)"
        raise ModelNotFoundError(
            f"model {ref!r}",
            f"is neither a catalog id {where} nor an existing local path",
            "Index it first (`lineage index PATH --catalog DIR`), pass --catalog, "
            "or give the path of a model folder",
        )

    def catalog_id(self, ref: str | Path) -> str | None:
        """See :func:`catalog_id_of`; None without a catalog."""
        return catalog_id_of(self.catalog, str(ref)) if self.catalog is not None else None
