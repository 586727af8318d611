"""Card front matter is read with libyaml's parser where PyYAML has it (about 4x faster a
card), composed by the same budgeted Composer as the pure-Python loader: every hostile
document is refused the same way, and what both loaders read, they read the same. The
one difference: libyaml accepts a few texts PyYAML's own scanner refuses (a tab where
it expects a token, `|#` as a block scalar header); it never refuses what PyYAML reads."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings

from lineage.errors import MalformedMetadataError
from lineage.weights import untrusted
from lineage.weights.untrusted import MAX_YAML_ALIASES, load_yaml
from tests.hardening.corpus import ALIAS_BOMB, deep_yaml
from tests.hardening.test_fuzz import yaml_texts

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

HOSTILE = {
    "alias bomb": ALIAS_BOMB.format(field="license").strip("-\n"),
    "deep nesting": deep_yaml().strip("-\n"),
    "self reference": "a: &a [1, *a]",
    "too many aliases": "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]",
    "control character": "license: mit\x07",
    "not yaml": "a: [1, 2",
    "python tag": "a: !!python/object:os.system ls",
}


def read_with(loader: type, text: str):
    """load_yaml's answer with `loader`: ("ok", data) or ("refused", why)."""
    chosen, untrusted._LOADER = untrusted._LOADER, loader
    try:
        return "ok", load_yaml(text, "card")
    except MalformedMetadataError as err:
        return "refused", err.why
    finally:
        untrusted._LOADER = chosen


def test_libyaml_is_the_loader_used():
    assert untrusted._LOADER is untrusted.BudgetedCSafeLoader


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_are_refused_as_by_the_pure_python_loader(name):
    fast = read_with(untrusted.BudgetedCSafeLoader, HOSTILE[name])
    pure = read_with(untrusted.BudgetedSafeLoader, HOSTILE[name])
    assert fast[0] == pure[0] == "refused"
    if name in ("alias bomb", "deep nesting", "self reference", "too many aliases"):
        assert fast == pure  # the budgets speak, in the same words


def test_a_real_card_reads_the_same():
    text = (
        "base_model: [acme/base, acme/other]\nbase_model_relation: merge\nlicense: mit\n"
        "tags:\n- a\n- b\nmodel-index:\n- name: m\n  results: []\ndate: 2024-01-01\n"
        "anchors: &x {k: v}\nagain: *x\n"
    )
    fast = read_with(untrusted.BudgetedCSafeLoader, text)
    assert fast == read_with(untrusted.BudgetedSafeLoader, text)
    assert fast[0] == "ok" and fast[1]["again"] == {"k": "v"}


PURE_ONLY_REFUSALS = ("found character '\\t'", "expected chomping or indentation indicator")


@settings(max_examples=300, deadline=None, derandomize=True)  # CI sees the same texts
@given(text=yaml_texts)
def test_both_loaders_agree(text):
    fast = read_with(untrusted.BudgetedCSafeLoader, text)
    pure = read_with(untrusted.BudgetedSafeLoader, text)
    if fast[0] == pure[0] == "ok":
        assert _same(fast[1], pure[1], "!" in text), (text, fast, pure)
    elif fast[0] != pure[0]:
        assert fast[0] == "ok", (fast, pure)  # libyaml never refuses what PyYAML reads
        assert any(why in pure[1] for why in PURE_ONLY_REFUSALS), pure
    else:  # both refuse: over a budget in both, or in neither
        assert fast[1].startswith("is refused: it") == pure[1].startswith("is refused: it")


def _same(a, b, tagged: bool) -> bool:
    """Equal, nan equal to nan; where the text has a non-specific tag ('!'), an empty
    node libyaml reads as '' (the tag makes it a string, as the YAML spec says) and
    PyYAML as None counts as the same: card fields are type-checked either way."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tagged) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tagged) for x, y in zip(a, b, strict=True))
    if tagged and a == "" and b is None:
        return True
    return a == b or (a != a and b != b)  # nan


def test_an_empty_node_with_a_non_specific_tag():
    assert read_with(untrusted.BudgetedCSafeLoader, "!") == ("ok", "")
    assert read_with(untrusted.BudgetedSafeLoader, "!") == ("ok", None)


def test_the_known_difference():
    assert read_with(untrusted.BudgetedCSafeLoader, "0\t") == ("ok", 0)
    assert read_with(untrusted.BudgetedSafeLoader, "0\t")[0] == "refused"
