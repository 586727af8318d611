"""Content hash of a tensor: identical tensors (same dtype, shape and bytes) share it.

dtype and shape are part of the hash so that equal bytes reinterpreted differently do
not collide. sha256 runs on SHA-NI hardware on most CPUs and releases the GIL, so it
can overlap with the moment and sketch arithmetic in another thread.
"""

from __future__ import annotations

import hashlib

HASH_HEX_CHARS = 32  # 128 bits: collisions are not a practical concern at Hub scale


def content_hash(dtype: str, shape: tuple[int, ...], raw: memoryview | bytes) -> str:
    digest = hashlib.sha256(f"{dtype}|{list(shape)}|".encode())
    digest.update(raw)
    return digest.hexdigest()[:HASH_HEX_CHARS]
