"""The atlas: one self-contained HTML page of a whole catalog's Model Graph.

Every family at once (a family = a connected component of recovered edges), laid out by
Cytoscape.js (vendored, inlined: the page opens from disk with no network), with search by
id, zoom and pan, edges coloured by relation and as wide as their confidence, a slider
that hides edges below a confidence, card claims the weights contradict drawn as dashed
edges, and a panel that shows a clicked model's card claims beside what its weights say.
Built for thousands of models: model labels appear only when zoomed in, edge labels
(relation, confidence) around the chosen model and under the mouse, and the page draws
a texture while panning.

Input is plain data; output is text (this module never touches a catalog).
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.render import COLOURS

VENDOR = Path(__file__).parent / "vendor"
CYTOSCAPE_VERSION = "3.35.0"


@dataclass
class Atlas:
    models: dict[str, dict]  # id -> catalog claims: kind, dtype, card_base_models, ...
    edges: list[RecoveredEdge]
    disagreements: list[dict] = field(default_factory=list)
    run_id: str | None = None
    title: str = "lineage atlas"


def families(nodes: list[str], edges: list[RecoveredEdge]) -> list[list[str]]:
    """Connected components of the recovered edges, largest first (ties by first id)."""
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in edges:
        if e.parent in parent and e.child in parent:
            parent[find(e.parent)] = find(e.child)
    groups: dict[str, list[str]] = defaultdict(list)
    for n in nodes:
        groups[find(n)].append(n)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


def _root_of(family: list[str], children: set[str]) -> str:
    """The family's name in the list: its first model without a recovered parent."""
    return next((m for m in family if m not in children), family[0])


def _card_parents(claims: dict) -> list[str]:
    bases = claims.get("card_base_models") or []
    return [str(b) for b in bases if isinstance(b, str)]


def atlas_payload(atlas: Atlas) -> dict:
    """Compact JSON for the page: nodes and edges refer to nodes by index."""
    nodes = sorted(atlas.models)
    index = {n: i for i, n in enumerate(nodes)}
    fams = families(nodes, atlas.edges)
    family_of = {n: k for k, g in enumerate(fams) for n in g}
    children = {e.child for e in atlas.edges}
    disputed = defaultdict(list)
    for d in atlas.disagreements:
        disputed[d["child"]].append(d)
    # A card claim is drawn (dashed) where the weights contradict it: the card names a
    # parent in the catalog that recovery did not find. Claims the weights confirm are in
    # the model panel; drawing them too would double the edges to draw.
    card_edges = sorted({(index[d["card_parent"]], index[d["child"]], d.get("card_relation") or "")
                         for d in atlas.disagreements
                         if d["kind"] == "parent" and d["card_parent"] in index
                         and d["child"] in index})
    return {
        "title": atlas.title,
        "run_id": atlas.run_id,
        "colours": COLOURS,
        "nodes": [{"id": n, "f": family_of[n], "kind": atlas.models[n].get("kind"),
                   "dtype": atlas.models[n].get("dtype"),
                   "card": _card_parents(atlas.models[n]),
                   "rel": atlas.models[n].get("card_relation"),
                   "adapter": atlas.models[n].get("adapter_base"),
                   "dis": [d["kind"] + ": card names " + str(d["card_parent"])
                           for d in disputed.get(n, [])]}
                  for n in nodes],
        "edges": [[index[e.parent], index[e.child], e.relation, round(e.confidence, 3)]
                  for e in atlas.edges if e.parent in index and e.child in index],
        "cards": [list(c) for c in card_edges],
        "families": [[index[_root_of(g, children)], len(g)] for g in fams],
    }


def to_atlas_html(atlas: Atlas) -> str:
    data = json.dumps(atlas_payload(atlas), default=str).replace("</", "<\\/")
    library = (VENDOR / "cytoscape.min.js").read_text(encoding="utf-8")
    return (ATLAS_TEMPLATE.replace("__TITLE__", html.escape(atlas.title))
            .replace("__VERSION__", CYTOSCAPE_VERSION)
            .replace("__DATA__", data)
            .replace("__CYTOSCAPE__", library.replace("</script", "<\\/script")))


ATLAS_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; overflow: hidden; font: 13px system-ui, sans-serif; }
body { display: flex; }
#cy { flex: 1 1 auto; min-width: 0; height: 100%; background: #fafafa; }
#side { flex: 0 0 clamp(240px, 28vw, 380px); height: 100%; overflow-y: auto;
        overflow-x: hidden; border-left: 1px solid #ccc; padding: 10px; word-break: break-all; }
h3 { margin: 0 0 6px; font-size: 15px; } h4 { margin: 8px 0 4px; }
#search { width: 100%; padding: 4px; }
#matches { list-style: none; padding: 0; margin: 4px 0; max-height: 160px; overflow-y: auto; }
#matches li, #families li { cursor: pointer; padding: 1px 0; }
#matches li:hover, #families li:hover { background: #eef; }
#families { list-style: none; padding: 0; margin: 4px 0; max-height: 220px; overflow-y: auto; }
.legend span { display: inline-block; margin-right: 8px; white-space: nowrap; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
td { padding: 2px 4px; vertical-align: top; } td:first-child { width: 34%; color: #555; }
.muted { color: #777; }
</style></head>
<body><div id="cy"></div>
<div id="side">
<h3>__TITLE__</h3>
<div id="stats" class="muted"></div>
<h4>Search</h4>
<input id="search" type="search" placeholder="model id (Enter: go to the first match)"
       autocomplete="off" spellcheck="false">
<div id="found" class="muted"></div><ul id="matches"></ul>
<h4>Edges</h4>
<label>hide below confidence <b id="confValue">0.00</b><br>
<input id="conf" type="range" min="0" max="1" step="0.05" value="0" style="width:100%"></label>
<label><input id="showCards" type="checkbox" checked> card claims the weights contradict
(dashed)</label>
<div class="legend" id="legend"></div>
<h4>Model</h4>
<div id="detail" class="muted">Click a model: its card's claims beside what the weights
say.</div>
<h4>Families</h4><ul id="families"></ul>
<p class="muted">Drawn with Cytoscape.js __VERSION__ (MIT), inlined: no network.</p>
</div>
<script>__CYTOSCAPE__</script>
<script id="atlas-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  const t0 = performance.now();
  const data = JSON.parse(document.getElementById("atlas-data").textContent);
  const N = data.nodes, colours = data.colours;
  const $ = id => document.getElementById(id);
  const text = (tag, s, parent) => {
    const e = document.createElement(tag); e.textContent = s; parent.appendChild(e); return e;
  };
  // Elements: nodes carry their family; recovered edges their relation and confidence;
  // card claims the weights contradict are dashed edges.
  const els = [];
  N.forEach((n, i) => els.push({group: "nodes", data: {id: "n" + i, label: n.id, f: n.f},
    classes: n.dis.length ? "disputed" : ""}));
  data.edges.forEach(([s, t, rel, conf], k) => els.push({group: "edges", data: {
    id: "e" + k, source: "n" + s, target: "n" + t, rel: rel, conf: conf,
    colour: colours[rel] || "#000", label: rel + " " + conf.toFixed(2)}, classes: "rec"}));
  data.cards.forEach(([s, t, rel], k) => els.push({group: "edges", data: {
    id: "c" + k, source: "n" + s, target: "n" + t, rel: "card", conf: 1,
    label: "card: " + (rel || "base_model")}, classes: "card"}));
  const cy = cytoscape({
    container: $("cy"), elements: els, layout: {name: "null"},
    textureOnViewport: true, hideEdgesOnViewport: N.length > 2000, pixelRatio: 1,
    motionBlur: false, minZoom: 0.02, maxZoom: 4, wheelSensitivity: 0.3,
    style: [
      {selector: "node", style: {"width": 16, "height": 16, "background-color": "#7a8a99",
        "label": "data(label)", "font-size": 10, "min-zoomed-font-size": 8,
        "text-valign": "bottom", "text-margin-y": 3}},
      {selector: "node.disputed", style: {"border-width": 3, "border-color": "#ff7f0e"}},
      {selector: "node.match", style: {"background-color": "#ffbf00", "width": 22,
        "height": 22}},
      {selector: "node:selected", style: {"background-color": "#000", "width": 26,
        "height": 26, "font-size": 12, "font-weight": "bold", "min-zoomed-font-size": 0}},
      {selector: "edge", style: {"curve-style": "straight", "target-arrow-shape": "triangle",
        "arrow-scale": 0.8, "line-color": "data(colour)", "target-arrow-color": "data(colour)",
        "width": "mapData(conf, 0, 1, 1, 4)"}},
      // Labels (relation and confidence) on the edges around the chosen model and under
      // the mouse: measuring thousands of edge labels up front costs seconds.
      {selector: "edge.labelled", style: {"label": "data(label)", "font-size": 9,
        "text-rotation": "autorotate", "color": "#222", "text-background-color": "#fafafa",
        "text-background-opacity": 0.8}},
      {selector: "edge.card", style: {"line-style": "dashed", "line-color": "#ff7f0e",
        "target-arrow-color": "#ff7f0e", "width": 1.5, "opacity": 0.8}},
      {selector: ".gone", style: {"display": "none"}},
    ],
  });
  const tCreated = performance.now();
  // Layout: each family by Cytoscape's breadthfirst layout (roots = models without a
  // recovered parent) inside its own box; boxes packed on shelves, largest first; all in
  // one batch, so nothing is redrawn until every family is placed.
  const members = data.families.map(() => []);  // node indices per family
  N.forEach((n, i) => members[n.f].push(i));
  const nodesOf = (graph, list) => graph.collection(list.map(i => graph.$id("n" + i)));
  // Depth of each model (longest chain of recovered parents above it), to size each
  // family's box by its widest level and its number of levels.
  const hasParent = new Uint8Array(N.length), depth = new Int32Array(N.length);
  const children = N.map(() => []);
  data.edges.forEach(([s, t]) => { hasParent[t] = 1; children[s].push(t); });
  const queue = [];
  N.forEach((n, i) => { if (!hasParent[i]) queue.push(i); });
  for (let q = 0; q < queue.length && q < 4 * N.length; q++) {  // bounded: merges revisit
    const i = queue[q];
    children[i].forEach(c => {
      if (depth[c] < depth[i] + 1) { depth[c] = depth[i] + 1; queue.push(c); }
    });
  }
  const byFamily = data.families.map(() => []);  // node elements per family
  cy.nodes().forEach(n => byFamily[n.data("f")].push(n));
  const loners = [], boxes = [];
  byFamily.forEach(list => {
    if (list.length === 1) { loners.push(list[0]); return; }
    const perLevel = {};
    list.forEach(n => { const d = depth[+n.id().slice(1)]; perLevel[d] = (perLevel[d] || 0) + 1; });
    const widest = Math.max(...Object.values(perLevel)), levels = Object.keys(perLevel).length;
    boxes.push({eles: cy.collection(list), w: 190 * widest + 80, h: 110 * levels + 80});
  });
  if (loners.length) {
    const side = Math.ceil(Math.sqrt(loners.length));
    boxes.push({eles: cy.collection(loners), w: 90 * side + 60, h: 70 * side + 60,
      grid: true});
  }
  const area = boxes.reduce((a, b) => a + b.w * b.h, 0);
  const shelf = Math.max(1200, Math.sqrt(area) * 1.4);
  let x = 0, y = 0, rowH = 0;
  cy.batch(() => boxes.forEach(b => {
    if (x > 0 && x + b.w > shelf) { x = 0; y += rowH; rowH = 0; }
    const bb = {x1: x, y1: y, w: b.w - 40, h: b.h - 40};
    if (b.grid) {
      b.eles.layout({name: "grid", boundingBox: bb, animate: false, fit: false}).run();
    } else {
      const eles = b.eles.union(b.eles.connectedEdges(".rec"));  // a family is closed
      const roots = b.eles.filter(n => !hasParent[+n.id().slice(1)]);
      eles.layout({name: "breadthfirst", directed: true, roots: roots, boundingBox: bb,
        animate: false, fit: false, spacingFactor: 1, avoidOverlap: true}).run();
    }
    x += b.w; rowH = Math.max(rowH, b.h);
  }));
  const tLayout = performance.now();
  cy.fit(undefined, 20);

  // Side panel: stats, legend, families.
  $("stats").textContent = N.length + " models, " + data.edges.length + " recovered edges, "
    + data.families.length + " families" + (data.run_id ? " (run " + data.run_id + ")" : "");
  Object.entries(colours).forEach(([rel, colour]) => {
    const s = text("span", "\\u25a0 " + rel, $("legend")); s.style.color = colour;
  });
  const famList = $("families");
  data.families.slice(0, 300).forEach(([first, size], k) => {
    const li = text("li", "#" + k + "  " + N[first].id + "  (" + size + ")", famList);
    li.onclick = () => cy.animate({fit: {eles: nodesOf(cy, members[k]), padding: 40}},
      {duration: 250});
  });
  if (data.families.length > 300)
    text("li", "\\u2026 " + (data.families.length - 300) + " more (search by id)", famList);

  // Details of one model: what its card claims beside what the weights say.
  function row(table, k, v) {
    const tr = table.insertRow(); tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  function show(node) {
    const n = N[+node.id().slice(1)], box = $("detail");
    box.textContent = ""; box.className = "";
    const h = text("div", n.id, box); h.style.fontWeight = "bold"; h.id = "detail-id";
    const t = document.createElement("table"); box.appendChild(t);
    row(t, "family", "#" + n.f + " (" + members[n.f].length + " models)");
    row(t, "kind, dtype", (n.kind || "-") + ", " + (n.dtype || "-"));
    row(t, "card says", n.card.length ? n.card.join(", ") + (n.rel ? " (" + n.rel + ")" : "")
      : "(no base_model)");
    if (n.adapter) row(t, "adapter config", n.adapter);
    const ins = node.incomers("edge.rec");
    row(t, "weights say", ins.length ? ins.map(e => e.source().data("label") + " (" +
      e.data("rel") + ", " + e.data("conf").toFixed(2) + ")").join(", ") : "(a root)");
    const outs = node.outgoers("edge.rec");
    row(t, "children", outs.length ? outs.slice(0, 20).map(e => e.target().data("label") +
      " (" + e.data("rel") + ")").join(", ") + (outs.length > 20 ? " \\u2026" : "") : "-");
    n.dis.forEach(d => row(t, "disagreement", d));
  }
  function focus(node) {
    cy.elements(":selected").unselect(); node.select(); show(node);
    cy.edges(".labelled").removeClass("labelled"); node.connectedEdges().addClass("labelled");
    cy.animate({center: {eles: node}, zoom: Math.max(cy.zoom(), 1.2)}, {duration: 200});
  }
  cy.on("tap", "node", ev => focus(ev.target));
  cy.on("mouseover", "edge", ev => ev.target.addClass("labelled"));
  cy.on("mouseout", "edge", ev => {
    if (!ev.target.connectedNodes().some(n => n.selected())) ev.target.removeClass("labelled");
  });

  // Search by id: substring match, case-insensitive; Enter goes to the best match.
  const ids = N.map(n => n.id.toLowerCase());
  let hits = [];
  function search(q) {
    q = q.trim().toLowerCase();
    cy.batch(() => cy.nodes(".match").removeClass("match"));
    $("matches").textContent = ""; hits = [];
    if (!q) { $("found").textContent = ""; return; }
    ids.forEach((id, i) => { if (id.includes(q)) hits.push(i); });
    hits.sort((a, b) => (ids[a] === q ? -1 : 0) - (ids[b] === q ? -1 : 0) ||
      ids[a].length - ids[b].length);
    $("found").textContent = hits.length + " match" + (hits.length === 1 ? "" : "es");
    cy.batch(() => hits.slice(0, 500).forEach(i => cy.$id("n" + i).addClass("match")));
    hits.slice(0, 50).forEach(i => {
      text("li", N[i].id, $("matches")).onclick = () => focus(cy.$id("n" + i));
    });
  }
  $("search").addEventListener("input", ev => search(ev.target.value));
  $("search").addEventListener("keydown", ev => {
    if (ev.key === "Enter" && hits.length) focus(cy.$id("n" + hits[0]));
  });

  // Confidence slider and card claims.
  function filterEdges() {
    const min = +$("conf").value, cards = $("showCards").checked;
    $("confValue").textContent = min.toFixed(2);
    cy.batch(() => {
      cy.edges(".rec").forEach(e => e.toggleClass("gone", e.data("conf") < min));
      cy.edges(".card").toggleClass("gone", !cards);
    });
  }
  $("conf").addEventListener("input", filterEdges);
  $("showCards").addEventListener("change", filterEdges);
  window.atlas = {cy: cy, search: search, focus: focus, loadMs: performance.now() - t0,
    createMs: tCreated - t0, layoutMs: tLayout - tCreated};
  document.body.dataset.ready = "1";
})();
</script></body></html>
"""
