"""Which files hold a model's weights: single file, sharded, PEFT adapter, diffusers.

A layout is a list of (prefix, safetensors file) sources; tensor names are the names in
the file, prefixed by the diffusers component where there is one. File names inside
index files come from strangers and are checked to stay inside the model folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lineage.errors import MalformedWeightsError, ModelNotFoundError, UnsafeFormatError
from lineage.weights.untrusted import read_json_object, weight_map_files

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
WEIGHT_STEMS = ("model", "diffusion_pytorch_model", "adapter_model")
PICKLE_FIX = (
    "Convert it to safetensors, or opt in with allow_pickle=True / --allow-pickle, which "
    "loads it with torch.load(weights_only=True) and never runs arbitrary code"
)


@dataclass(frozen=True)
class Source:
    prefix: str  # "" or "unet." for a diffusers component
    file: Path
    pickle: bool = False


@dataclass(frozen=True)
class Layout:
    kind: str  # safetensors-file | pickle-file | transformers | peft-adapter | diffusers
    root: Path  # folder holding config.json / README.md (the file's folder for a file)
    sources: tuple[Source, ...]
    # A model held in memory instead of on disk (files a crawl's probe read whole), by
    # path relative to `root`: its weights and metadata files are read from here, with
    # the same checks, and `root` only names them in errors. None: read from disk.
    held: Mapping[str, bytes] | None = field(default=None, repr=False, compare=False)


def resolve_layout(path: str | Path, *, allow_pickle: bool = False) -> Layout:
    """Find the weight files of the model at `path` (a file or a folder)."""
    path = Path(path)
    if path.is_file():
        return _file_layout(path, allow_pickle)
    if not path.is_dir():
        raise ModelNotFoundError(f"model path {path}", "does not exist", "Check the path")
    if (path / "model_index.json").is_file():
        return Layout("diffusers", path, _diffusers_sources(path, allow_pickle))
    kind = "peft-adapter" if (path / "adapter_config.json").is_file() else "transformers"
    return Layout(kind, path, _folder_sources(path, "", allow_pickle))


def _file_layout(path: Path, allow_pickle: bool) -> Layout:
    if path.suffix == ".safetensors":
        return Layout("safetensors-file", path.parent, (Source("", path),))
    if path.suffix in PICKLE_SUFFIXES:
        _check_pickle_allowed(path, allow_pickle)
        return Layout("pickle-file", path.parent, (Source("", path, pickle=True),))
    raise ModelNotFoundError(
        f"weights file {path}", "is neither .safetensors nor a known pickle format", ""
    )


def _check_pickle_allowed(path: Path, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise UnsafeFormatError(
            f"weights file {path}",
            "is a pickle format, and unpickling untrusted weights can execute arbitrary code",
            PICKLE_FIX,
        )


def _folder_sources(folder: Path, prefix: str, allow_pickle: bool) -> tuple[Source, ...]:
    for stem in WEIGHT_STEMS:
        index = folder / f"{stem}.safetensors.index.json"
        if index.is_file():
            return tuple(Source(prefix, f) for f in _shards_from_index(index))
        single = folder / f"{stem}.safetensors"
        if single.is_file():
            return (Source(prefix, single),)
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles:
        _check_pickle_allowed(pickles[0], allow_pickle)
        return tuple(Source(prefix, p, pickle=True) for p in pickles)
    raise ModelNotFoundError(
        f"model folder {folder}",
        "holds no model.safetensors, sharded index, adapter_model.safetensors or "
        "diffusion_pytorch_model.safetensors",
        "Point at a folder with safetensors weights",
    )


def _shards_from_index(index: Path) -> list[Path]:
    names = weight_map_files(read_json_object(index) or {}, str(index))
    return [_inside(index.parent, name, index) for name in names]


def _inside(folder: Path, name: object, origin: Path) -> Path:
    """Resolve a file name from an index; refuse anything that escapes `folder`."""
    if not _is_plain_name(name):
        shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
        raise MalformedWeightsError(
            f"index {origin}", f"names file {shown}, which is not a plain file name", ""
        )
    path = folder / name
    if not path.is_file():
        raise ModelNotFoundError(
            f"shard {name}", f"is listed in {origin} but missing", "Download every shard"
        )
    return path


def _is_plain_name(name: object) -> bool:
    """A single path component the OS accepts: no separators, no NUL, not . or .., at
    most 255 bytes (longer names make stat() raise instead of answering False)."""
    return (
        isinstance(name, str)
        and 0 < len(name.encode("utf-8", "surrogatepass")) <= 255
        and not any(c in name for c in "/\\\x00")
        and name not in {".", ".."}
    )


def _diffusers_sources(root: Path, allow_pickle: bool) -> tuple[Source, ...]:
    index = read_json_object(root / "model_index.json") or {}
    sources: list[Source] = []
    for component in sorted(k for k in index if not k.startswith("_")):
        sub = root / component
        if not _is_plain_name(component) or not sub.is_dir():
            continue  # schedulers and tokenizers have no weights folder
        try:
            sources += _folder_sources(sub, f"{component}.", allow_pickle)
        except ModelNotFoundError:
            continue  # e.g. a scheduler folder with only a config
    if not sources:
        raise ModelNotFoundError(
            f"diffusers pipeline {root}", "has no component with safetensors weights", ""
        )
    return tuple(sources)
