"""``tokenizer_source``: which model's tokenizer files the merged model gets.

mergekit accepts ``base`` (the base model's), a model reference, or ``union`` (a merged
vocabulary, with every embedding row re-mapped to it). Lineage copies files and never
re-maps embedding rows, so it accepts a source whose vocabulary is the one the merged
embeddings already index (same token -> id map as the reference model), and refuses
``union`` and any different vocabulary by name instead of writing a model whose
embeddings and tokenizer disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lineage.errors import SpecError

VOCAB_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model",
               "merges.txt", "added_tokens.json")
MAX_TOKENIZER_BYTES = 64 * 1024**2


def _vocab_of(folder: Path) -> dict[str, Any]:
    """What decides token ids: tokenizer.json's vocab and added tokens, else the raw
    bytes of the classic vocabulary files."""
    found: dict[str, Any] = {}
    for name in VOCAB_FILES:
        path = folder / name
        if not path.is_file() or path.stat().st_size > MAX_TOKENIZER_BYTES:
            continue
        if name == "tokenizer.json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                model = data.get("model") or {}
                found[name] = (model.get("vocab"), model.get("merges"),
                               [(t.get("id"), t.get("content"))
                                for t in data.get("added_tokens") or [] if isinstance(t, dict)])
                continue
            except (ValueError, AttributeError):
                pass
        found[name] = path.read_bytes()
    return found


def tokenizer_folder(recipe, models: Mapping[str, Any], reference: str,
                     resolve: Callable[[str], Any]) -> Path:
    """The folder whose tokenizer files are copied; SpecError when the requested source
    cannot be honoured without re-mapping embeddings."""
    tok = recipe.tokenizer_source
    ref_root = Path(models[reference].layout.root)
    if tok in (None, "base"):
        return ref_root
    if tok == "union":
        raise SpecError("tokenizer_source: union",
                        "is a mergekit option lineage does not support: a union vocabulary "
                        "needs every embedding and lm_head row re-mapped to new token ids",
                        "Use `tokenizer_source: base` or a model with the same vocabulary")
    if not isinstance(tok, str):
        raise SpecError(f"tokenizer_source: {tok!r:.60}", "must be base, union or a model",
                        "Use `tokenizer_source: base`")
    root = Path(models[tok].layout.root) if tok in models else Path(resolve(tok))
    if not root.is_dir():
        raise SpecError(f"tokenizer_source: {tok}", f"resolves to {root}, not a model folder",
                        "Give a model whose folder holds tokenizer files")
    mine, theirs = _vocab_of(ref_root), _vocab_of(root)
    if not theirs:
        raise SpecError(f"tokenizer_source: {tok}", "has no tokenizer files",
                        "Use `tokenizer_source: base`")
    if mine and mine != theirs:
        raise SpecError(f"tokenizer_source: {tok}",
                        f"has a different vocabulary from {reference}; lineage copies "
                        "tokenizer files and does not re-map embedding rows (mergekit's "
                        "tokenizer permutation), so the merged embeddings would index the "
                        "wrong tokens", "Use `tokenizer_source: base`")
    return root
