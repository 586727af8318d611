"""Model ids: the Hub's repo-id rule, and one rule naming local model folders by it.

Pure string/path-part functions (no I/O, no imports beyond the standard library), shared
by the Hub client (lineage.hub.ids) and local discovery (lineage.weights.discover).
"""

from __future__ import annotations

import re

# The Hub's own rules: [namespace/]name, each part 1-96 chars of letters, digits, "-",
# "_", "."; no part starts or ends with "-" or ".", and "--" / ".." are reserved.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
REPO_ID = re.compile(rf"^(?:{_PART}/)?{_PART}$")


def is_repo_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and REPO_ID.fullmatch(value) is not None
        and "--" not in value
        and ".." not in value
    )


# Local folders named after Hub repos. One rule for every way a model reaches the disk,
# so that a card naming its parent by Hub id ("org/name") matches the parent's catalog id:
#   <root>/org/name/                        -> org/name (a zoo, a Hub-like mirror)
#   org__name/                              -> org/name (a common flattened download name)
#   models--org--name/snapshots/<rev>/      -> org/name at revision <rev> (the HF cache)
#   any other folder                        -> its name (relative path under a root)
HF_CACHE_REPO = "models--"
HF_CACHE_SNAPSHOTS = "snapshots"
FLAT_SEPARATOR = "__"


def hf_cache_snapshot(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(repo id, revision) when a path's parts end in the Hugging Face cache layout
    `models--org--name/snapshots/<rev>`, else None."""
    if len(parts) < 3 or parts[-2] != HF_CACHE_SNAPSHOTS:
        return None
    repo = parts[-3]
    if not repo.startswith(HF_CACHE_REPO):
        return None
    repo_id = repo[len(HF_CACHE_REPO):].replace("--", "/", 1)
    return (repo_id, parts[-1]) if is_repo_id(repo_id) and parts[-1] else None


def unflatten_repo_name(name: str) -> str:
    """`org__name` -> `org/name` when that is a valid Hub id; any other name unchanged."""
    if FLAT_SEPARATOR in name:
        org, _, rest = name.partition(FLAT_SEPARATOR)
        if is_repo_id(f"{org}/{rest}"):
            return f"{org}/{rest}"
    return name


def local_model_id(relative_parts: tuple[str, ...]) -> str:
    """The catalog id of a local model from its folder's path parts: relative to the
    directory that was searched, or just the folder's own (resolved) name."""
    snapshot = hf_cache_snapshot(relative_parts)
    if snapshot is not None:
        return snapshot[0]
    parts = [p for p in relative_parts if p not in ("", ".")]
    if not parts:
        return ""
    last = unflatten_repo_name(parts[-1])
    if "/" in last:  # self-describing: the folder says its whole Hub id
        return last
    return "/".join([*parts[:-1], last])
