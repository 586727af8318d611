"""The Bar: hostile metadata beside good models, indexed in ONE `lineage index` call.

No hang (a timeout fails), no traceback, the good models indexed, every folder
accounted for (indexed + failed = folders), and the same call again works.
"""

from __future__ import annotations

import re

from catalog import Catalog
from lineage.weights.discover import discover_models
from tests.hardening.conftest import run_lineage
from tests.hardening.corpus import EXPECTED, secret_as_number

SUMMARY = re.compile(r"indexed (\d+), unchanged (\d+), failed (\d+)")


def _summary(stdout: str) -> tuple[int, int, int]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return tuple(int(g) for g in match.groups())


def test_one_call_indexes_the_good_and_accounts_for_every_folder(corpus, tmp_path):
    catalog = tmp_path / "cat"
    folders = [mid for mid, _ in discover_models(corpus)]
    assert sorted(folders) == sorted(EXPECTED)

    first = run_lineage("index", str(corpus), "--quiet", "--catalog", str(catalog))
    output = first.stdout + first.stderr
    assert "Traceback" not in output, output
    assert first.returncode == 0, output
    indexed, unchanged, failed = _summary(first.stdout)
    want_indexed = sorted(m for m, (outcome, _) in EXPECTED.items() if outcome == "indexed")
    want_failed = sorted(m for m, (outcome, _) in EXPECTED.items() if outcome == "failed")
    assert (indexed, unchanged, failed) == (len(want_indexed), 0, len(want_failed))
    assert indexed + failed == len(folders)

    with Catalog(catalog).reader() as con:
        rows = dict(con.execute("SELECT model_id, card_error FROM models").fetchall())
        states = dict(
            con.execute(
                "SELECT model_id, error FROM crawl_state WHERE status = 'failed'"
            ).fetchall()
        )
    assert sorted(rows) == want_indexed
    assert sorted(states) == want_failed
    for model_id, (outcome, phrase) in EXPECTED.items():
        if outcome == "indexed" and phrase:  # a bad card: indexed, its problem recorded
            assert phrase in rows[model_id], (model_id, rows[model_id])
        if outcome == "failed":
            assert phrase in states[model_id], (model_id, states[model_id])
            assert f"failed {model_id}: " in first.stdout  # one failure line per model
    # Failure lines name the file and the field and say what to do.
    assert "adapter_config.json: field 'r': is a 71-bit number, outside 1..1048576" in first.stdout
    assert "Fix or remove 'r' in adapter_config.json" in first.stdout
    # Nothing raw from the files reaches the terminal: no escapes, no bytes as numbers.
    assert "\x1b" not in output
    assert secret_as_number(corpus) not in output

    again = run_lineage("index", str(corpus), "--quiet", "--catalog", str(catalog))
    assert "Traceback" not in again.stdout + again.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert _summary(again.stdout) == (0, len(want_indexed), len(want_failed))
    with Catalog(catalog).reader() as con:
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == len(want_indexed)
