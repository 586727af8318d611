"""Content identities of files, as git and git-LFS would give them, cached by stat.

The Hub identifies a small file by its git blob sha1 and a large (LFS) file by the
sha256 of its content; the client uses these as ETags and cache keys. Hashing a file
on every request would make listings slow, so results are cached per
(real path, size, mtime, inode): rewriting a file invalidates its entry.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import threading
from dataclasses import dataclass

from lineage.errors import MalformedMetadataError
from lineage.weights.header import MAX_HEADER_BYTES, MAX_NDIM
from lineage.weights.untrusted import load_json

# Files the Hub's default .gitattributes stores in LFS (weights, archives...), plus
# anything big: their ETag is the sha256, the client reads X-Linked-Etag/Size.
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".h5",
    ".msgpack",
    ".onnx",
    ".npy",
    ".npz",
    ".pkl",
    ".pickle",
    ".tar",
    ".gz",
    ".zip",
    ".model",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobId:
    git_oid: str  # sha1 of what git stores: the content, or the LFS pointer
    sha256: str | None  # content sha256, for LFS files only
    pointer_size: int | None  # size of the LFS pointer file


def is_lfs(name: str, size: int) -> bool:
    return name.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def _lfs_pointer(sha256: str, size: int) -> bytes:
    spec = "https://git-lfs.github.com/spec/v1"
    return f"version {spec}\noid sha256:{sha256}\nsize {size}\n".encode()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _hash_file(path: str, size: int, lfs: bool) -> BlobId:
    sha1 = hashlib.sha1(b"blob %d\x00" % size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            (sha256 if lfs else sha1).update(chunk)
    if not lfs:
        return BlobId(sha1.hexdigest(), None, None)
    digest = sha256.hexdigest()
    pointer = _lfs_pointer(digest, size)
    return BlobId(_git_blob_sha1(pointer), digest, len(pointer))


def safetensors_parameters(path: str) -> dict[str, int] | None:
    """Element count per dtype from a safetensors header; None if the file is malformed.

    Reads only the 8-byte length and the JSON header, never the tensor data.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return None
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                return None
            header = load_json(f.read(length), path, max_bytes=MAX_HEADER_BYTES)
    except (OSError, MalformedMetadataError):
        return None
    if not isinstance(header, dict):
        return None
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape[:MAX_NDIM]):
            return None
        dtype = info.get("dtype")
        if not isinstance(dtype, str) or len(shape) > MAX_NDIM:
            return None
        counts[dtype[:16]] = counts.get(dtype[:16], 0) + math.prod(shape)
    return counts


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


class BlobCache:
    """Thread-safe memo of file identities and safetensors parameter counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple, BlobId] = {}
        self._params: dict[tuple, dict[str, int] | None] = {}

    @staticmethod
    def _key(path: str) -> tuple:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)

    def blob_id(self, path: str, name: str) -> BlobId:
        key = self._key(path)
        with self._lock:
            hit = self._ids.get(key)
        if hit is None:
            hit = _hash_file(path, key[1], is_lfs(name, key[1]))
            with self._lock:
                self._ids[key] = hit
        return hit

    def parameters(self, path: str) -> dict[str, int] | None:
        key = self._key(path)
        with self._lock:
            if key in self._params:
                return self._params[key]
        counts = safetensors_parameters(path)
        with self._lock:
            self._params[key] = counts
        return counts
