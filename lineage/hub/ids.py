"""Names that come from the Hub are hostile: repo ids and file names are checked here
before they reach a URL, a local path or the catalog."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lineage.errors import HubError
from lineage.ids import REPO_ID, is_repo_id

__all__ = ["REPO_ID", "is_repo_id", "local_dir_name", "redact", "safe_join", "validate_repo_id"]

MAX_PATH_CHARS = 1024
_FIX_ID = "Give a Hub repo id such as 'org/name' (letters, digits, '-', '_', '.')"


def validate_repo_id(value: object) -> str:
    """`value` if it is a well-formed Hub repo id, else HubError saying why."""
    if not is_repo_id(value):
        raise HubError(f"repo id {str(value)[:200]!r}", "is not a valid Hub repo id", _FIX_ID)
    return value  # type: ignore[return-value]


def is_safe_relpath(name: object) -> bool:
    """A '/'-separated path that stays inside the folder it is joined to."""
    if not isinstance(name, str) or not name or len(name) > MAX_PATH_CHARS:
        return False
    if "\\" in name or "\x00" in name or name.startswith("/") or ":" in name:
        return False
    parts = name.split("/")
    return all(p and p not in (".", "..") and not p.startswith(".") for p in parts)


def safe_join(folder: str | Path, name: str) -> Path:
    """`folder/name`, refusing names that are absolute, hidden, or climb out of `folder`."""
    if not is_safe_relpath(name):
        raise HubError(f"file name {name[:200]!r}", "is not a safe relative path", "")
    root = Path(folder).resolve()
    path = (root / PurePosixPath(name)).resolve()
    if root != path and root not in path.parents:
        raise HubError(f"file name {name[:200]!r}", f"resolves outside {root}", "")
    return path


def local_dir_name(repo_id: str) -> str:
    """A folder name for a repo: 'org--name' is unambiguous because ids never hold '--'."""
    return validate_repo_id(repo_id).replace("/", "--")


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked (errors are stored and printed)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text

