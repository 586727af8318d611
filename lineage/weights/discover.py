"""Find model folders under a directory, and give each a content-derived revision."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from lineage.ids import hf_cache_snapshot, local_model_id, unflatten_repo_name

MODEL_MARKERS = (
    "model_index.json",
    "adapter_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
)


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in MODEL_MARKERS)


def discover_models(root: str | Path) -> Iterator[tuple[str, Path]]:
    """Yield (model_id, folder) for every model under `root`, sorted.

    The id is the folder's path relative to `root` ("org/name" for a zoo or a Hub-like
    mirror); a model folder given directly is named by its folder's real name (also for
    "."); `org__name` folders and Hugging Face cache snapshots are named by their Hub id
    (lineage.hub.ids.local_model_id). Model folders are
    not searched further (a diffusers pipeline's components belong to it). Symlinks are
    not followed, so a hostile tree cannot loop or escape.
    """
    root = Path(root)
    if is_model_folder(root) or root.is_file():
        yield own_model_id(root), root
        return
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        keep = []
        for name in dirnames:
            child = here / name
            if child.is_symlink() or name.startswith("."):
                continue
            if is_model_folder(child):
                yield local_model_id(child.relative_to(root).parts), child
            else:
                keep.append(name)
        dirnames[:] = keep


def own_model_id(path: Path) -> str:
    """The id of a model folder (or file) given directly: its real name, never ''."""
    real = Path(os.path.abspath(path))  # "." and "x/.." get the folder's own name
    snapshot = hf_cache_snapshot(real.parts)
    if snapshot is not None:
        return snapshot[0]
    if real.is_file():
        return real.name
    return unflatten_repo_name(real.name) or str(real)


def local_revision(folder: str | Path) -> str:
    """A revision id for a local model: hash of every file's relative name, size and
    modification time, so any change to weights, config or card gives a new revision.
    A Hugging Face cache snapshot is already named by its commit: that is its revision."""
    folder = Path(folder)
    snapshot = hf_cache_snapshot(Path(os.path.abspath(folder)).parts)
    if snapshot is not None and folder.is_dir():
        return snapshot[1]
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        rel = path.name if path == folder else path.relative_to(folder).as_posix()
        digest.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:40]
