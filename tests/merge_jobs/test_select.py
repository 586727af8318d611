"""Kinship-guided selection: the pure proposal rule, then the whole job on a catalog whose
kinship values are known."""

from __future__ import annotations

import pytest

from catalog.merges import record_kinship
from jobs.cli import main
from jobs.merging import propose, select_and_merge
from lineage.errors import SpecError
from lineage.kinship import kinship
from tests.merge_jobs.conftest import count

KIN = {("a", "b"): 0.60, ("a", "c"): 0.50, ("a", "d"): 0.10, ("a", "e"): 0.30,
       ("b", "c"): 0.70, ("b", "d"): 0.20, ("b", "e"): 0.40, ("c", "d"): 0.15,
       ("c", "e"): 0.25, ("d", "e"): 0.35}
SCORES = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.4, "e": 0.5}


def kin(x: str, y: str) -> float:
    return KIN[tuple(sorted((x, y)))]


def test_top_k_pairs_plus_exploration_with_least_related():
    gen = propose(SCORES, kin, k=3, threshold=0.95)
    assert gen.top == ["a", "b", "c"] and not gen.saturated
    assert gen.mean_kinship == pytest.approx((0.6 + 0.5 + 0.7) / 3)
    pairs = [(p.a, p.b) for p in gen.proposals]
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c"), ("a", "d")]  # d: kinship 0.10
    assert gen.proposals[-1].reason.startswith("exploration")


def test_done_pairs_are_skipped_and_saturation_stops():
    gen = propose(SCORES, kin, k=2, done={frozenset(("a", "b")), frozenset(("a", "d"))})
    assert [(p.a, p.b) for p in gen.proposals] == [("a", "e")]  # next least related to a
    stop = propose(SCORES, kin, k=3, threshold=0.55)
    assert stop.saturated and stop.proposals == []


POOL = "SELECT model_id FROM current_models WHERE model_id LIKE 'org/ft%' ORDER BY 1"


def _scores(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("model_id,score\norg/ft0,0.9\norg/ft1,0.8\norg/ft2,0.7\n")
    return path


def test_selection_job_on_catalog_with_known_kinship(tmp_path, catalog, vit_family, capsys):
    record_kinship(catalog, [("org/ft0", "org/ft1", "org/base", 0.40),
                             ("org/ft2", "org/ft0", "org/base", 0.10)], "known")
    out = tmp_path / "merges"
    assert main(["merge", "--select", "top-k", "--pool", POOL, "--k", "2", "--base",
                 "org/base", "--scores", str(_scores(tmp_path)), "--out-dir", str(out),
                 "--catalog", str(catalog.root)]) == 0
    text = capsys.readouterr().out
    assert "top-2 pair" in text and "exploration" in text
    with catalog.reader() as con:
        merged = con.execute(
            "SELECT child, list(parent ORDER BY parent) FROM edges WHERE source = 'merge-job' "
            "GROUP BY child ORDER BY 2").fetchall()
    assert [m[1] for m in merged] == [["org/base", "org/ft0", "org/ft1"],
                                      ["org/base", "org/ft0", "org/ft2"]]
    for child, _ in merged:
        assert (out / child / "model.safetensors").is_file()
        assert count(catalog, "SELECT count(*) FROM current_models WHERE model_id = ?",
                     [child]) == 1


def test_missing_kinship_is_computed_exactly_and_stored(tmp_path, catalog, vit_family):
    report = select_and_merge(catalog, POOL, tmp_path / "m", k=2, base="org/base",
                              scores_csv=_scores(tmp_path))
    assert report.kinship_computed == 2  # (ft0, ft1) and (ft0, ft2)
    exact = kinship(vit_family["org/ft0"], vit_family["org/ft2"], vit_family["org/base"],
                    metrics="cs").values["cs"]
    assert report.rows[1]["b"] == "org/ft2"
    assert report.rows[1]["kinship"] == pytest.approx(exact)
    assert count(catalog, "SELECT count(*) FROM kinship WHERE method = 'exact'") == 2
    again = select_and_merge(catalog, POOL, tmp_path / "m", k=2, base="org/base",
                             scores_csv=_scores(tmp_path))
    assert again.kinship_computed == 0 and not any(r["new"] for r in again.rows)


def test_saturated_pool_merges_nothing(tmp_path, catalog):
    record_kinship(catalog, [("org/ft0", "org/ft1", "org/base", 0.99)], "known")
    report = select_and_merge(catalog, POOL, tmp_path / "m", k=2, base="org/base",
                              scores_csv=_scores(tmp_path))
    assert report.rows == [] and "saturated (0.990 >= 0.95)" in report.stopped


def test_pool_without_common_parent_asks_for_base(tmp_path, catalog):
    with pytest.raises(SpecError, match="no single common parent.*--base"):
        select_and_merge(catalog, POOL, tmp_path / "m", scores_csv=_scores(tmp_path))
