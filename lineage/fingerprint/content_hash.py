"""Content hash of a tensor: identical tensors (same dtype, shape and bytes) share it.

dtype and shape are part of the hash so that equal bytes reinterpreted differently do
not collide. sha256 runs on SHA-NI hardware on most CPUs and releases the GIL, so it
can overlap with the moment and sketch arithmetic in another thread.
"""

from __future__ import annotations

import hashlib

HASH_HEX_CHARS = 32  # 128 bits: collisions are not a practical concern at Hub scale


def content_hasher(dtype: str, shape: tuple[int, ...]) -> hashlib._Hash:
    """A sha256 primed with dtype and shape: `update` it with the bytes, in order
    (chunk by chunk if need be), then take `hexdigest()[:HASH_HEX_CHARS]`."""
    return hashlib.sha256(f"{dtype}|{list(shape)}|".encode())


def content_hash(dtype: str, shape: tuple[int, ...], raw: memoryview | bytes) -> str:
    digest = content_hasher(dtype, shape)
    digest.update(raw)
    return digest.hexdigest()[:HASH_HEX_CHARS]
