"""One rule names local models by the Hub ids their cards use (lineage.ids)."""

from __future__ import annotations

import pytest

from jobs.output import escape
from lineage.ids import hf_cache_snapshot, local_model_id, unflatten_repo_name


@pytest.mark.parametrize(("parts", "expected"), [
    (("org", "name"), "org/name"),                                 # a zoo / Hub mirror
    (("org__name",), "org/name"),                                  # flattened download
    (("mirror", "org__name"), "org/name"),                         # says its whole id
    (("models--org--name", "snapshots", "0123abc"), "org/name"),   # the HF cache
    (("models--solo", "snapshots", "0123abc"), "solo"),            # a repo without org
    (("plain",), "plain"),
    (("a", "b", "c"), "a/b/c"),                                    # deeper: the relative path
    (("bad__-name",), "bad__-name"),                               # not a Hub id: unchanged
    (("a__b__c",), "a/b__c"),                                      # the first "__" splits
])
def test_local_model_ids(parts, expected):
    assert local_model_id(parts) == expected


def test_hf_cache_snapshot_gives_the_revision():
    assert hf_cache_snapshot(("hub", "models--org--m", "snapshots", "abc")) == ("org/m", "abc")
    assert hf_cache_snapshot(("hub", "models--org--m", "blobs", "abc")) is None
    assert hf_cache_snapshot(("x", "snapshots", "abc")) is None
    assert unflatten_repo_name("no_double") == "no_double"


def test_escape_writes_control_characters_out():
    assert escape("a\x1b[31mb\r\n\u202e") == "a\\x1b[31mb\\x0d\\x0a\\u202e"
    assert escape("tab\tnew\n", keep="\n\t") == "tab\tnew\n"
