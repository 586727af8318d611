"""Draw a model family as Mermaid, Graphviz DOT or one self-contained HTML page.

Input is plain data (a `Family`); output is text. The HTML page embeds the family as
JSON and draws it with inline JavaScript into an SVG: no CDN, no network, opens from
disk. Edges are coloured by relation and labelled with their confidence; clicking a
node shows what its card claims beside what the weights say.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field

from lineage.recovery.graph import RecoveredEdge

COLOURS = {
    "finetune": "#1f77b4",
    "lora": "#9467bd",
    "adapter": "#8c564b",
    "merge": "#d62728",
    "quantized": "#2ca02c",
    "reupload": "#7f7f7f",
    "card": "#ff7f0e",
}


@dataclass
class Family:
    focus: str  # the model the family was asked for
    nodes: list[str]
    edges: list[RecoveredEdge]
    cards: dict[str, dict] = field(default_factory=dict)  # id -> card claims
    disagreements: list[dict] = field(default_factory=list)


def family_of(model: str, edges: list[RecoveredEdge], cards: dict[str, dict],
              disagreements: list[dict] | None = None) -> Family:
    """The connected component of `model` in the recovered graph."""
    links: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        links[e.parent].add(e.child)
        links[e.child].add(e.parent)
    seen, todo = {model}, [model]
    while todo:
        for other in links[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    mine = [e for e in edges if e.child in seen]
    return Family(model, sorted(seen), mine, {m: cards.get(m, {}) for m in sorted(seen)},
                  [d for d in disagreements or [] if d["child"] in seen])


def layers(family: Family) -> dict[str, int]:
    """Depth of each node: longest path from a root (merges sit below all parents)."""
    parents: dict[str, list[str]] = defaultdict(list)
    for e in family.edges:
        parents[e.child].append(e.parent)
    depth: dict[str, int] = {}

    def visit(node: str, stack: frozenset = frozenset()) -> int:
        if node not in depth:
            ps = [p for p in parents[node] if p not in stack]
            depth[node] = 1 + max((visit(p, stack | {node}) for p in ps), default=-1)
        return depth[node]

    for n in family.nodes:
        visit(n)
    return depth


def _mid(node: str) -> str:
    return "n" + "".join(c if c.isalnum() else "_" for c in node)


def to_mermaid(family: Family) -> str:
    lines = ["graph TD"]
    for n in family.nodes:
        lines.append(f'    {_mid(n)}["{n}"]')
    for k, e in enumerate(family.edges):
        lines.append(f"    {_mid(e.parent)} -->|{e.relation} {e.confidence:.2f}| {_mid(e.child)}")
        lines.append(f"    linkStyle {k} stroke:{COLOURS.get(e.relation, '#000')}")
    lines.append(f"    style {_mid(family.focus)} stroke-width:3px")
    return "\n".join(lines) + "\n"


def to_dot(family: Family) -> str:
    lines = ["digraph family {", "    rankdir=TB;", "    node [shape=box];"]
    for n in family.nodes:
        bold = ", penwidth=3" if n == family.focus else ""
        lines.append(f"    {json.dumps(n)} [label={json.dumps(n)}{bold}];")
    for e in family.edges:
        colour = COLOURS.get(e.relation, "black")
        label = json.dumps(f"{e.relation} {e.confidence:.2f}")
        lines.append(f"    {json.dumps(e.parent)} -> {json.dumps(e.child)} "
                     f"[label={label}, color={json.dumps(colour)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _payload(family: Family) -> dict:
    depth = layers(family)
    rows: dict[int, list[str]] = defaultdict(list)
    for n in family.nodes:
        rows[depth[n]].append(n)
    return {
        "focus": family.focus,
        "nodes": [{"id": n, "depth": depth[n], "slot": rows[depth[n]].index(n),
                   "width": len(rows[depth[n]]), "card": family.cards.get(n, {})}
                  for n in family.nodes],
        "edges": [{"id": f"{e.parent}->{e.child}", **e.to_dict()} for e in family.edges],
        "disagreements": family.disagreements,
        "colours": COLOURS,
    }


def to_html(family: Family) -> str:
    data = json.dumps(_payload(family), default=str).replace("</", "<\\/")
    title = html.escape(f"lineage: family of {family.focus}")
    return HTML_TEMPLATE.replace("__TITLE__", title).replace("__DATA__", data)


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
#graph { flex: 1; overflow: auto; }
#side { width: 360px; border-left: 1px solid #ccc; padding: 10px; overflow: auto; }
.node rect { fill: #fff; stroke: #333; rx: 6; }
.node.focus rect { stroke-width: 3; }
.node.disagrees rect { fill: #fff3e0; stroke: #ff7f0e; }
.node text { font-size: 11px; pointer-events: none; }
.edge text { font-size: 10px; }
.legend span { display: inline-block; margin-right: 8px; }
table { border-collapse: collapse; } td { padding: 2px 6px; vertical-align: top; }
</style></head>
<body><div id="graph"></div><div id="side"><h3>__TITLE__</h3>
<div class="legend" id="legend"></div>
<p>Click a model: its card's claims beside what the weights say.</p>
<div id="detail"></div></div>
<script id="family-data" type="application/json">__DATA__</script>
<script>
(function () {
  const data = JSON.parse(document.getElementById("family-data").textContent);
  const NS = "http://www.w3.org/2000/svg", W = 190, H = 34, GX = 40, GY = 80;
  const widest = Math.max(1, ...data.nodes.map(n => n.width));
  const deepest = Math.max(0, ...data.nodes.map(n => n.depth));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", widest * (W + GX) + GX);
  svg.setAttribute("height", (deepest + 1) * (H + GY) + GY);
  const pos = {};
  data.nodes.forEach(n => {
    const rowWidth = n.width * (W + GX), offset = (widest * (W + GX) - rowWidth) / 2;
    pos[n.id] = {x: GX + offset + n.slot * (W + GX), y: GY / 2 + n.depth * (H + GY)};
  });
  const el = (tag, attrs, parent) => {
    const e = document.createElementNS(NS, tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
    parent.appendChild(e); return e;
  };
  const defs = el("defs", {}, svg);
  Object.entries(data.colours).forEach(([rel, colour]) => {
    const m = el("marker", {id: "arrow-" + rel, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", fill: colour}, m);
  });
  const disputed = new Set(data.disagreements.map(d => d.child));
  data.edges.forEach(e => {
    const a = pos[e.parent], b = pos[e.child], colour = data.colours[e.relation] || "#000";
    const g = el("g", {"class": "edge", "data-id": e.id, "data-relation": e.relation}, svg);
    el("line", {x1: a.x + W / 2, y1: a.y + H, x2: b.x + W / 2, y2: b.y, stroke: colour,
      "stroke-width": 1 + 2 * e.confidence, "marker-end": "url(#arrow-" + e.relation + ")"}, g);
    const t = el("text", {x: (a.x + b.x) / 2 + W / 2 + 4, y: (a.y + H + b.y) / 2, fill: colour}, g);
    t.textContent = e.relation + " " + e.confidence.toFixed(2);
    el("title", {}, g).textContent = JSON.stringify(e.evidence);
  });
  data.nodes.forEach(n => {
    const cls = "node" + (n.id === data.focus ? " focus" : "") +
      (disputed.has(n.id) ? " disagrees" : "");
    const g = el("g", {"class": cls, "data-id": n.id,
      transform: "translate(" + pos[n.id].x + "," + pos[n.id].y + ")"}, svg);
    el("rect", {width: W, height: H}, g);
    const t = el("text", {x: 6, y: H / 2 + 4}, g);
    t.textContent = n.id.length > 30 ? "\\u2026" + n.id.slice(-29) : n.id;
    g.addEventListener("click", () => show(n));
  });
  document.getElementById("graph").appendChild(svg);
  const legend = document.getElementById("legend");
  Object.entries(data.colours).forEach(([rel, colour]) => {
    const s = document.createElement("span"); s.style.color = colour;
    s.textContent = "\\u25a0 " + rel; legend.appendChild(s);
  });
  function row(table, k, v) {
    const tr = table.insertRow(); tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  function show(n) {
    const box = document.getElementById("detail"); box.textContent = "";
    const h = document.createElement("h4"); h.textContent = n.id; box.appendChild(h);
    const t = document.createElement("table"); box.appendChild(t);
    const card = n.card || {};
    row(t, "card says", (card.card_base_models || []).join(", ") || "(no base)");
    row(t, "card relation", card.card_relation || "-");
    if (card.adapter_base) row(t, "adapter config", card.adapter_base);
    const ins = data.edges.filter(e => e.child === n.id);
    row(t, "weights say", ins.map(e => e.parent + " (" + e.relation + ", " +
      e.confidence.toFixed(2) + ")").join(", ") || "(a root)");
    data.disagreements.filter(d => d.child === n.id).forEach(d =>
      row(t, "disagreement", d.kind + ": card names " + d.card_parent));
  }
  const focus = data.nodes.find(n => n.id === data.focus);
  if (focus) show(focus);
})();
</script></body></html>
"""
