"""Writing model repos atomically: build in a temp folder beside the target, then rename,
so a killed build leaves either a whole model or none."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder that becomes `target` only if the block finishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():  # an earlier half-resumed run; the new one is complete
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def clean_stale_temps(root: Path) -> None:
    """Remove temp folders a killed build left behind (names start with '.')."""
    for org in root.iterdir() if root.is_dir() else []:
        if org.is_dir() and not org.name.startswith("."):
            for entry in org.iterdir():
                if entry.name.startswith(".") and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Exclusive lock on `target` (a sibling `.lock` file): two processes building the
    same zoo (say, into the shared cache) take turns instead of writing over each other."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
