"""A directory of model repos, read the way the Hub presents them.

Layout: ROOT/<org>/<name>/... is the repo "org/name". Anything else in ROOT (files
such as ground_truth.json, hidden folders) is not a repo. Repos are re-read on every
request, so tests can add, change or delete repos while the server runs; hashing is
memoised by `BlobCache` so re-reading is cheap.

The commit sha is derived from the files' contents (sha1 over sorted path + blob id),
so it is deterministic and changes whenever any file changes. Only the current state
exists: older shas are unknown revisions.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from jobs.loopback_hub import card as cards
from jobs.loopback_hub.blobs import BlobCache, BlobId
from jobs.loopback_hub.paths import BadName, check_relative_path, is_inside, is_plain_name
from lineage.errors import MalformedMetadataError
from lineage.weights.untrusted import MAX_CARD_BYTES, read_json_object


@dataclass(frozen=True)
class RepoFile:
    path: str  # relative to the repo, '/'-separated
    abspath: str
    size: int
    mtime: float


def iso(ts: float) -> str:
    """The Hub's timestamp format: 2024-05-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _walk_files(root: Path, directory: Path) -> dict[str, RepoFile]:
    """Regular files of a repo, skipping hidden folders and links that leave ROOT."""
    files: dict[str, RepoFile] = {}
    for here, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            abspath = os.path.join(here, fname)
            rel = os.path.relpath(abspath, directory).replace(os.sep, "/")
            try:
                check_relative_path(rel)
            except BadName:
                continue  # unreachable through a URL anyway
            if not is_inside(Path(abspath), root) or not os.path.isfile(abspath):
                continue  # a symlink pointing outside ROOT, a socket, a dangling link...
            st = os.stat(abspath)
            files[rel] = RepoFile(rel, abspath, st.st_size, st.st_mtime)
    return dict(sorted(files.items()))


@dataclass
class Repo:
    org: str
    name: str
    directory: Path
    files: dict[str, RepoFile]
    cache: BlobCache = field(repr=False)

    @property
    def repo_id(self) -> str:
        return f"{self.org}/{self.name}"

    def blob(self, path: str) -> BlobId:
        return self.cache.blob_id(self.files[path].abspath, path)

    @cached_property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for path in self.files:
            digest.update(f"{path}\x00{self.blob(path).git_oid}\n".encode())
        return digest.hexdigest()

    def resolves(self, revision: str) -> bool:
        return revision in ("main", "refs/heads/main", self.sha)

    @cached_property
    def card(self) -> dict:
        readme = self.files.get("README.md")
        if readme is None:
            return {}
        with open(readme.abspath, "rb") as f:
            text = f.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
        return cards.read_front_matter(text)

    @cached_property
    def config(self) -> dict | None:
        config = self.files.get("config.json")
        if config is None:
            return None
        try:
            return read_json_object(Path(config.abspath))
        except (OSError, MalformedMetadataError):
            return None  # a broken config shows as no config; the repo is still served

    @property
    def created_at(self) -> str:
        times = [f.mtime for f in self.files.values()] or [self.directory.stat().st_mtime]
        return iso(min(times))

    @property
    def last_modified(self) -> str:
        times = [f.mtime for f in self.files.values()] or [self.directory.stat().st_mtime]
        return iso(max(times))

    @property
    def library_name(self) -> str | None:
        declared = self.card.get("library_name")
        if isinstance(declared, str):
            return declared
        if "adapter_config.json" in self.files:
            return "peft"
        return "transformers" if "config.json" in self.files else None

    @cached_property
    def tags(self) -> list[str]:
        tags = cards.card_tags(self.card)
        if self.library_name:
            tags.append(self.library_name)
        if any(p.endswith(".safetensors") for p in self.files):
            tags.append("safetensors")
        if any(p.endswith(".gguf") for p in self.files):
            tags.append("gguf")
        model_type = (self.config or {}).get("model_type")
        if isinstance(model_type, str):
            tags.append(model_type)
        tags += cards.lineage_tags(self.card, self.files)
        return list(dict.fromkeys(tags))  # dedupe, keep order

    def safetensors(self) -> dict | None:
        """{"parameters": {dtype: n}, "total": n} over the repo's safetensors files."""
        totals: dict[str, int] = {}
        found = False
        for path, entry in self.files.items():
            if not path.endswith(".safetensors"):
                continue
            counts = self.cache.parameters(entry.abspath)
            if counts is None:
                continue
            found = True
            for dtype, n in counts.items():
                totals[dtype] = totals.get(dtype, 0) + n
        if not found:
            return None
        return {"parameters": totals, "total": sum(totals.values())}


def open_repo(root: Path, org: str, name: str, cache: BlobCache) -> Repo | None:
    """The repo org/name under ROOT, or None when there is no such (safe) folder."""
    if not (is_plain_name(org) and is_plain_name(name)):
        return None
    directory = root / org / name
    if not directory.is_dir() or not is_inside(directory, root):
        return None
    return Repo(org, name, directory, _walk_files(root, directory), cache)


def list_repo_ids(root: Path) -> list[tuple[str, str]]:
    """(org, name) of every repo folder under ROOT, sorted."""
    out: list[tuple[str, str]] = []
    for org in sorted(os.listdir(root)):
        org_dir = root / org
        if not is_plain_name(org) or not org_dir.is_dir() or not is_inside(org_dir, root):
            continue
        for name in sorted(os.listdir(org_dir)):
            repo_dir = org_dir / name
            if is_plain_name(name) and repo_dir.is_dir() and is_inside(repo_dir, root):
                out.append((org, name))
    return out
