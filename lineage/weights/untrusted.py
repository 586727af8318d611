"""The one reader for metadata that comes from strangers.

config.json, adapter_config.json, model_index.json, shard indexes, model-card front
matter and safetensors `__metadata__` are all written by whoever uploaded the model.
Everything here is bounded before it is parsed:
- size: a byte limit per kind of file, checked on the bytes read (never on a stat that
  could change between the check and the read);
- nesting: JSON depth is measured by a flat scan of the text *before* `json.loads`
  (which recurses once per level), YAML depth is counted while composing, so a
  100 000-level document is refused in linear time instead of raising RecursionError;
- YAML aliases: each alias counts as the size of what it expands to, so an alias bomb
  (a few hundred bytes that expand to 10^9 nodes) is refused while it is being read;
- types: `Fields` extracts each field as the type it must be (str, list of str, int in
  a range) and either refuses the model (strict) or ignores the field with a note
  (lenient, for cards, whose problems are never fatal).
Errors never echo the raw bytes: only sizes, depths, positions and type names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from lineage.errors import MalformedMetadataError

MAX_JSON_BYTES = 4 * 1024 * 1024  # config, adapter config, model_index, shard index
MAX_CARD_BYTES = 1024 * 1024  # README.md read for its front matter
MAX_DEPTH = 64  # real configs nest 3-5 levels; diffusers indexes 2
MAX_YAML_NODES = 20_000  # expanded nodes of a card's front matter (aliases expanded)
MAX_YAML_ALIASES = 200  # alias uses per card
MAX_TEXT = 1024  # characters of one text field (ids, types, tags, license)
MAX_ITEMS = 1024  # items of one list field (tags, architectures, base models)

# A JSON string (escapes included), matched without backtracking: stripped before the
# bracket scan so brackets inside strings do not count as nesting.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SCAN_CHUNK = 1 << 20  # brackets scanned per numpy step
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _refuse(what: str, why: str, fix: str = "") -> MalformedMetadataError:
    return MalformedMetadataError(what, why, fix or "Fix or remove the file; it is not read")


# -- JSON -------------------------------------------------------------------------------


def json_depth(data: bytes, stop_above: int | None = None) -> tuple[int, bool]:
    """(deepest nesting of `[`/`{` in JSON text, whether the whole text was scanned).

    A flat scan: no recursion, no Python loop per byte, memory bounded by the chunk (a
    100 MB header of brackets is scanned in C and numpy). It stops at the end of a
    chunk once deeper than `stop_above`; the depth is then a lower bound."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _SCAN_CHUNK):
        codes = np.frombuffer(brackets[start : start + _SCAN_CHUNK], dtype=np.uint8)
        steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int8)
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
        if stop_above is not None and deepest > stop_above:
            return deepest, start + _SCAN_CHUNK >= len(brackets)
    return deepest, True


def load_json(
    data: bytes | str,
    what: str,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_DEPTH,
) -> object:
    """Parse untrusted JSON `data` (named `what` in errors) within size and depth limits."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise _refuse(what, f"is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _refuse(what, f"is not valid UTF-8 (at byte {err.start})") from None
    depth, exact = json_depth(raw, stop_above=max_depth)
    if depth > max_depth:
        shown = str(depth) if exact else f"at least {depth}"
        raise _refuse(what, f"nests {shown} levels deep, over the limit of {max_depth}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _refuse(what, f"is not valid JSON ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of 10 000 digits
        raise _refuse(what, f"is not readable JSON ({type(err).__name__})") from None


def load_json_object(data: bytes | str, what: str, **limits: int) -> dict:
    doc = load_json(data, what, **limits)
    if not isinstance(doc, dict):
        raise _refuse(what, f"is {_kind(doc)}, expected a JSON object")
    return doc


def read_bounded(path: Path, max_bytes: int) -> bytes | None:
    """At most `max_bytes + 1` bytes of `path` (one more than allowed shows it is too
    big), or None when there is no such regular file."""
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        return fh.read(max_bytes + 1)


def read_json_object(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> dict | None:
    """The JSON object in file `path`, None when absent; refused when bad."""
    data = read_bounded(path, max_bytes)
    if data is None:
        return None
    return load_json_object(data, str(path), max_bytes=max_bytes)


def weight_map_files(index: dict, what: str) -> list[str]:
    """The shard file names a `*.safetensors.index.json` maps tensors to, sorted.
    (Whether each name is a plain file inside the model folder is the caller's check.)"""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _refuse(
            what, f"has no weight_map object (found {_kind(weight_map)})", "Re-export the model"
        )
    names = list(weight_map.values())
    if not all(isinstance(n, str) for n in names):
        raise _refuse(
            what, "maps a tensor to something other than a file name", "Re-export the model"
        )
    return sorted(set(names))


# -- YAML -------------------------------------------------------------------------------


class YamlBudgetError(yaml.YAMLError):
    """A YAML document exceeded its depth, node or alias budget."""


class _Budgets:
    """Counts while composing: nesting depth, alias uses, and the size each node would
    have once every alias in it were expanded. Refuses the document as soon as one
    exceeds its budget, before anything is constructed. Mixed into a loader before its
    Composer (the Python one, whatever parser produces the events)."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_YAML_NODES
    max_aliases = MAX_YAML_ALIASES

    def _start_budgets(self) -> None:
        self._depth = 0
        self._aliases = 0
        self._expanded: dict[int, int] = {}  # id(node) -> expanded size

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        is_alias = self.check_event(yaml.AliasEvent)
        if is_alias:
            self._aliases += 1
            if self._aliases > self.max_aliases:
                raise YamlBudgetError(f"uses more than {self.max_aliases} aliases")
        self._depth += 1
        if self._depth > self.max_depth:
            raise YamlBudgetError(f"nests deeper than {self.max_depth} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._expanded.get(id(node))
        if size is None:
            if is_alias:  # the anchor is still being composed: a self-reference
                raise YamlBudgetError("has an alias that refers to itself")
            size = 1 + sum(self._expanded.get(id(child), 1) for child in _children(node))
            self._expanded[id(node)] = size
        if size > self.max_nodes:
            raise YamlBudgetError(f"expands to more than {self.max_nodes} nodes (an alias bomb?)")
        return node


class BudgetedSafeLoader(_Budgets, yaml.SafeLoader):
    """yaml.SafeLoader within the budgets (pure Python: the reference)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._start_budgets()


if getattr(yaml, "__with_libyaml__", False):

    class BudgetedCSafeLoader(
        _Budgets, yaml.composer.Composer, yaml.cyaml.CParser, yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """The same budgets over libyaml's scanner and parser (C: the events of a card's
        front matter in about a fifth of the time). Composing stays Python's Composer,
        ahead of CParser's own, so every node passes through the budgets above."""

        def __init__(self, stream: str) -> None:
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)
            self._start_budgets()

    _LOADER: type = BudgetedCSafeLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = BudgetedSafeLoader


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, what: str) -> object:
    """Parse untrusted YAML within the depth, node and alias budgets (safe tags only)."""
    if len(text) > MAX_CARD_BYTES:
        raise _refuse(what, f"is {len(text)} characters, over the {MAX_CARD_BYTES} limit")
    loader = None
    try:
        loader = _LOADER(text)  # its reader already refuses some characters
        return loader.get_single_data()
    except YamlBudgetError as err:
        raise _refuse(what, f"is refused: it {err}") from None
    except yaml.MarkedYAMLError as err:
        where = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
        problem = _printable(str(err.problem or err.context or "unreadable"))
        raise _refuse(what, f"is not valid YAML ({problem}{where})") from None
    except (
        yaml.YAMLError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        IndexError,
        KeyError,
    ) as err:
        # SafeConstructor raises plain errors on hostile tagged scalars (!!int, !!timestamp)
        raise _refuse(what, f"is not valid YAML ({type(err).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()


# -- typed fields -----------------------------------------------------------------------


@dataclass
class Fields:
    """Typed access to the fields of an untrusted JSON/YAML object.

    strict: a field of the wrong type refuses the whole document (MalformedMetadataError
    naming the file, the field, what it must be and what to do).
    lenient: the field is ignored and a note kept in `notes` (for documents whose
    problems are never fatal, such as model cards).
    """

    doc: dict
    file: str
    strict: bool = True
    fix: str = ""
    notes: list[str] = field(default_factory=list)

    def _bad(self, key: str, why: str) -> None:
        if self.strict:
            raise MalformedMetadataError(
                f"{self.file}: field {key!r}",
                why,
                self.fix or f"Fix or remove {key!r} in {Path(self.file).name}",
            )
        self.notes.append(f"{key}: {why}; ignored")

    def text(self, key: str, *, max_len: int = MAX_TEXT) -> str | None:
        """A string field (None when absent or null)."""
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self._bad(key, f"must be a string, got {_kind(value)}")
            return None
        return value if self._plain(key, value, max_len) else None

    def texts(
        self, key: str, *, one_or_many: bool = False, max_items: int = MAX_ITEMS
    ) -> tuple[str, ...]:
        """A list-of-strings field (or, with `one_or_many`, a single string)."""
        value = self.doc.get(key)
        if value is None:
            return ()
        if one_or_many and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(key, f"must be a list of strings, got {_describe_list(value)}")
            return ()
        if len(value) > max_items:
            self._bad(key, f"has {len(value)} items, over the limit of {max_items}")
            return ()
        if not all(self._plain(key, v, MAX_TEXT) for v in value):
            return ()
        return tuple(value)

    def integer(self, key: str, low: int, high: int) -> int | None:
        """An int field in [low, high] (None when absent or null)."""
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self._bad(key, f"must be an integer, got {_kind(value)}")
            return None
        if not low <= value <= high:
            shown = str(value) if value.bit_length() < 64 else f"a {value.bit_length()}-bit number"
            self._bad(key, f"is {shown}, outside {low}..{high}")
            return None
        return value

    def _plain(self, key: str, value: str, max_len: int) -> bool:
        if len(value) > max_len:
            self._bad(key, f"is {len(value)} characters long, over the limit of {max_len}")
            return False
        if _CONTROL.search(value):
            self._bad(key, "contains control characters")
            return False
        return True


def _printable(text: str, limit: int = 120) -> str:
    """`text` cut to `limit` characters with control characters replaced: parser
    messages may quote a character or a tag of the document."""
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _describe_list(value: object) -> str:
    if not isinstance(value, list):
        return _kind(value)
    odd = next(v for v in value if not isinstance(v, str))
    return f"a list holding {_kind(odd)}"
