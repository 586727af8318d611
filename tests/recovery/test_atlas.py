"""The atlas (`lineage graph --all --format html`) in headless Chromium, driven over the
DevTools protocol: every model and edge of the tiny zoo's catalog is in the graph, the
page fits two window sizes (screenshots), typing an id in the search box finds it, a
click on a model shows its card's claims beside what the weights say, and the
confidence slider hides uncertain edges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.cli import main as cli
from lineage.recovery.atlas import Atlas, atlas_payload, families
from lineage.recovery.graph import RecoveredEdge
from tests.browser import CHROMIUM, Browser, png_size

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="chromium is not installed (apt-get install -y chromium)")
READY = "document.body?.dataset.ready === '1'"


def test_families_are_connected_components_largest_first():
    edges = [RecoveredEdge("a", "b", "finetune", 0.9), RecoveredEdge("b", "c", "lora", 0.5),
             RecoveredEdge("x", "y", "merge", 0.7)]
    assert families(["a", "b", "c", "x", "y", "z"], edges) == [["a", "b", "c"], ["x", "y"],
                                                                 ["z"]]
    payload = atlas_payload(Atlas(
        {m: {"card_base_models": ["a"] if m == "c" else []} for m in "abcxyz"}, edges,
        [{"child": "c", "card_parent": "a", "kind": "parent", "card_relation": None}]))
    index = {n["id"]: i for i, n in enumerate(payload["nodes"])}
    assert payload["cards"] == [[index["a"], index["c"], ""]]  # the contradicted claim
    assert payload["nodes"][index["c"]]["card"] == ["a"]
    assert payload["nodes"][index["c"]]["dis"] == ["parent: card names a"]


@pytest.fixture(scope="module")
def atlas_page(recovered, tiny_catalog, tmp_path_factory) -> Path:
    page = tmp_path_factory.mktemp("atlas") / "atlas.html"
    assert cli(["graph", "--all", "--format", "html", "--out", str(page),
                "--catalog", str(tiny_catalog.root), "--run", recovered.run_id]) == 0
    text = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    return page


def _rendered_centre(browser: Browser, model_id: str) -> tuple[float, float]:
    box = browser.eval(f"""(() => {{
        const cy = window.atlas.cy, n = cy.nodes().filter(n => n.data('label') === {model_id!r});
        const p = n.renderedPosition(), r = cy.container().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }})()""")
    return box[0], box[1]


def test_atlas_draws_the_whole_catalog_and_fits_two_sizes(atlas_page, recovered, tiny_truth,
                                                           tmp_path):
    models = sorted(n["id"] for n in tiny_truth["nodes"])
    with Browser(1400, 900) as browser:
        browser.open(atlas_page.as_uri(), ready=READY)
        drawn = browser.eval("window.atlas.cy.nodes().map(n => n.data('label')).sort()")
        assert drawn == models
        edges = browser.eval("window.atlas.cy.edges('.rec').map(e => e.source().data('label')"
                             " + '->' + e.target().data('label')).sort()")
        assert edges == sorted(f"{e.parent}->{e.child}" for e in recovered.result.edges)
        for width, height in ((1400, 900), (800, 600)):
            browser.resize(width, height)
            browser.eval("window.atlas.cy.resize(), window.atlas.cy.fit(undefined, 20), 0")
            shot = browser.screenshot(tmp_path / f"atlas-{width}.png")
            assert png_size(shot) == (width, height)
            assert shot.stat().st_size > 10_000  # a drawn graph, not a blank page
            # Nothing overflows the window: the side panel scrolls inside itself.
            assert browser.eval("document.documentElement.scrollWidth") <= width
            side = browser.eval("document.getElementById('side').getBoundingClientRect()."
                                "right")
            assert side <= width
            # Every model sits inside the drawing area once fitted.
            inside = browser.eval("""(() => { const cy = window.atlas.cy;
                const w = cy.width(), h = cy.height();
                return cy.nodes().every(n => { const p = n.renderedPosition();
                  return p.x >= 0 && p.y >= 0 && p.x <= w && p.y <= h; }); })()""")
            assert inside


def test_search_finds_a_model_and_a_click_shows_card_beside_weights(atlas_page, recovered,
                                                                    tiny_truth):
    merge = next(n for n in tiny_truth["nodes"] if n["relation"] == "merge")
    with Browser(1400, 900) as browser:
        browser.open(atlas_page.as_uri(), ready=READY)
        browser.eval("document.getElementById('search').focus()")
        browser.type(merge["id"])
        browser.press("Enter", 13)
        browser.wait_for(f"document.getElementById('detail-id')?.textContent === "
                         f"{merge['id']!r}")
        assert browser.eval("window.atlas.cy.$(':selected').data('label')") == merge["id"]
        assert browser.eval("document.getElementById('found').textContent").startswith("1 ")
        detail = browser.eval("document.getElementById('detail').innerText")
        parents = sorted(e.parent for e in recovered.result.edges if e.child == merge["id"])
        assert "card says" in detail and "weights say" in detail
        assert all(p in detail for p in parents) and "merge" in detail

        # A real mouse click on another model's node shows that model instead.
        other = next(e.child for e in recovered.result.edges if e.child != merge["id"])
        # The search centres its match in a 200 ms animation: let it end first, then
        # wait for our own view (a queued animation starts a frame after the last ends,
        # so "not animated" alone can be read in between).
        browser.wait_for("!window.atlas.cy.animated()")
        browser.eval(f"window.atlas.cy.animate({{center: {{eles: window.atlas.cy.nodes()"
                     f".filter(n => n.data('label') === {other!r})}}, zoom: 1.5}}, "
                     f"{{duration: 0}}), 0")
        browser.wait_for("Math.abs(window.atlas.cy.zoom() - 1.5) < 1e-9 && "
                         "!window.atlas.cy.animated()")
        browser.click(*_rendered_centre(browser, other))
        browser.wait_for(f"document.getElementById('detail-id')?.textContent === {other!r}")

        # The slider hides every recovered edge below the chosen confidence.
        browser.eval("(s => { s.value = '0.95'; s.dispatchEvent(new Event('input')); })"
                     "(document.getElementById('conf'))")
        hidden = browser.eval("window.atlas.cy.edges('.rec.gone').length")
        # (the page holds confidences to 3 decimals, atlas.py: compare those)
        assert hidden == sum(round(e.confidence, 3) < 0.95 for e in recovered.result.edges)
