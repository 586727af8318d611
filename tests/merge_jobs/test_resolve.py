"""Catalog ids -> local folders; Hub sources through the download cache; clear errors."""

from __future__ import annotations

import shutil

import pytest

from catalog.resolve import CatalogResolver, cached_snapshot
from catalog.rows import ModelRef, fingerprint_tables
from lineage.errors import ModelNotFoundError
from lineage.fingerprint import fingerprint_model
from lineage.weights import open_model


def test_catalog_id_resolves_to_indexed_folder(catalog, vit_family):
    resolve = CatalogResolver(catalog)
    assert resolve("org/ft1") == vit_family["org/ft1"].resolve()
    # A path the catalog indexed maps back to its id; an unknown path stays a path.
    assert resolve.catalog_id(str(vit_family["org/ft1"])) == "org/ft1"
    assert resolve(str(vit_family["org/ft2"])) == vit_family["org/ft2"].resolve()


def test_unknown_reference_names_model_and_fix(catalog):
    with pytest.raises(ModelNotFoundError) as err:
        CatalogResolver(catalog)("org/nope")
    text = str(err.value)
    assert "'org/nope'" in text and "neither a catalog id" in text and "lineage index" in text


def test_moved_folder_is_reported(catalog, vit_family, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(vit_family["org/ft0"], moved / "ft0")
    from jobs.local_index import index_local

    index_local(catalog, [moved], progress=False)  # id "ft0", source local:<moved>/ft0
    shutil.rmtree(moved)
    with pytest.raises(ModelNotFoundError, match="no longer exists.*re-index"):
        CatalogResolver(catalog)("ft0")


def test_hub_model_from_download_cache(catalog, vit_family, tmp_path):
    with open_model(vit_family["org/ft0"]) as m:
        fp = fingerprint_model(m)
    ref = ModelRef("hubby/vit", "abc123", "hub:https://huggingface.co")  # as the crawler
    catalog.commit(fingerprint_tables([(ref, fp)], "test-run"))
    cache = tmp_path / "hf"
    with pytest.raises(ModelNotFoundError) as err:
        CatalogResolver(catalog, hub_cache=cache)("hubby/vit")
    assert "not in the download cache" in str(err.value)
    assert "huggingface-cli download hubby/vit" in str(err.value)
    snap = cache / "models--hubby--vit" / "snapshots" / "abc123"
    shutil.copytree(vit_family["org/ft0"], snap)
    assert CatalogResolver(catalog, hub_cache=cache)("hubby/vit") == snap
    # Another revision in the cache: refs/main names the snapshot to use.
    (cache / "models--hubby--vit" / "refs").mkdir()
    (cache / "models--hubby--vit" / "refs" / "main").write_text("abc123")
    assert cached_snapshot(cache, "hubby/vit", "other") == snap


def test_paths_only_without_catalog(vit_family):
    assert CatalogResolver(None)(str(vit_family["org/base"])) == vit_family["org/base"].resolve()
    with pytest.raises(ModelNotFoundError, match="no catalog given"):
        CatalogResolver(None)("org/base")


def test_hub_model_from_crawl_cache(catalog, vit_family):
    with open_model(vit_family["org/ft1"]) as m:
        fp = fingerprint_model(m)
    sha = "0123456789abcdef0123456789abcdef01234567"
    catalog.commit(fingerprint_tables(
        [(ModelRef("crawled/vit", sha, "hub:http://127.0.0.1:9"), fp)], "test-run"))
    kept = catalog.root / ".crawl-cache" / "crawled--vit" / sha[:16]
    shutil.copytree(vit_family["org/ft1"], kept)
    assert CatalogResolver(catalog)("crawled/vit") == kept
