"""Validation of the hostile parts of a URL: repo ids, revisions and file names.

Nothing from a URL is ever joined onto a filesystem path unchecked. Repo ids must be
two plain names; file names must be relative paths of plain components. The server
then serves only files that the repo scanner listed (which already refused symlinks
leading outside the root), so a name that passes here still cannot reach beyond ROOT.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The Hub's own rule for repo names, roughly: letters, digits, '-', '_', '.'; no '..'.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class BadName(ValueError):
    """A URL part that can never name a repo or file (answered with HTTP 400)."""


def is_plain_name(name: str) -> bool:
    """A safe single path component for an org or repo name."""
    return bool(_NAME.match(name)) and ".." not in name


def check_repo_part(name: str) -> str:
    if not is_plain_name(name):
        raise BadName(f"invalid repo id part {name!r}")
    return name


def check_relative_path(path: str) -> str:
    """A file path inside a repo: '/'-separated plain components, nothing else."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise BadName(f"invalid file path {path!r}")
    for part in path.split("/"):
        if part in ("", ".", "..") or any(ord(c) < 32 for c in part):
            raise BadName(f"invalid file path {path!r}")
    return path


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `root` (resolved)."""
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root + os.sep)
