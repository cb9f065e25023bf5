// Lineage graph: nodes laid out in columns by depth (upstream left, downstream right),
// edges as curves with their relation, each node a link to its page. SVG, no dependencies.
(() => {
"use strict";

const KIND_COLOURS = {
  dataset: ["#e3f5ea", "#1d8a4e"], run: ["#e5f0ff", "#2f5bd3"], model: ["#f3e8fd", "#8a3fc6"],
  prediction: ["#fff3dc", "#b7791f"], evaluation: ["#e4f6f8", "#0f8b9c"], commit: ["#fdeaf1", "#c23a72"],
};

function drawLineage(container, graph, {onClick, rootId} = {}) {
  const NS = "http://www.w3.org/2000/svg";
  const cols = new Map();
  for (const n of graph.nodes) {
    if (!cols.has(n.depth)) cols.set(n.depth, []);
    cols.get(n.depth).push(n);
  }
  const depths = [...cols.keys()].sort((a, b) => a - b);
  const order = {dataset: 0, run: 1, commit: 2, model: 3, prediction: 4, evaluation: 5};
  for (const d of depths) cols.get(d).sort((a, b) => (order[a.kind] - order[b.kind]) || a.name.localeCompare(b.name));
  const nodeW = 170, nodeH = 44, gapX = 90, gapY = 18;
  const tallest = Math.max(...depths.map(d => cols.get(d).length));
  const w = depths.length * nodeW + (depths.length - 1) * gapX + 40, h = Math.max(tallest * (nodeH + gapY) + 30, 120);
  const pos = {};
  depths.forEach((d, i) => {
    const list = cols.get(d), top = (h - list.length * (nodeH + gapY) + gapY) / 2;
    list.forEach((n, j) => { pos[n.id] = {x: 20 + i * (nodeW + gapX), y: top + j * (nodeH + gapY)}; });
  });
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`); svg.setAttribute("height", Math.min(h, 640));
  svg.style.minWidth = Math.min(w, 1400) + "px";
  const defs = document.createElementNS(NS, "defs");
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#a8b0c2"/></marker>';
  svg.append(defs);
  for (const l of graph.links) {
    const a = pos[l.src], b = pos[l.dst];
    if (!a || !b) continue;
    const x1 = a.x + nodeW, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2;
    const same = a.x === b.x;  // both in one column: an arc on the right-hand side
    const path = document.createElementNS(NS, "path");
    const mx = (x1 + x2) / 2, bulge = 28 + Math.abs(y2 - y1) / 6;
    path.setAttribute("d", same ? `M${x1},${y1} C${x1 + bulge},${y1} ${x1 + bulge},${y2} ${x1 + 2},${y2}`
      : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
    path.setAttribute("class", "edge"); path.setAttribute("marker-end", "url(#arrow)");
    const tip = document.createElementNS(NS, "title"); tip.textContent = l.relation.replace("_", " "); path.append(tip);
    svg.append(path);
    if (same) continue;
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", mx); t.setAttribute("y", (y1 + y2) / 2 - 4); t.setAttribute("text-anchor", "middle");
    t.setAttribute("class", "edge-label"); t.textContent = l.relation.replace("_", " ");
    svg.append(t);
  }
  for (const n of graph.nodes) {
    const p = pos[n.id], [fill, stroke] = KIND_COLOURS[n.kind] || ["#eee", "#888"];
    const g = document.createElementNS(NS, "g");
    g.setAttribute("class", "node"); g.setAttribute("data-id", n.id); g.setAttribute("data-kind", n.kind);
    g.setAttribute("transform", `translate(${p.x},${p.y})`);
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("width", nodeW); r.setAttribute("height", nodeH); r.setAttribute("fill", fill);
    r.setAttribute("stroke", stroke); if (n.id === rootId) r.setAttribute("stroke-width", "3.5");
    const k = document.createElementNS(NS, "text");
    k.setAttribute("x", 10); k.setAttribute("y", 16); k.setAttribute("fill", stroke); k.setAttribute("font-weight", "600");
    k.setAttribute("font-size", "10.5"); k.textContent = n.kind.toUpperCase();
    const name = document.createElementNS(NS, "text");
    name.setAttribute("x", 10); name.setAttribute("y", 33); name.setAttribute("fill", "#1d2433");
    name.textContent = n.name.length > 22 ? n.name.slice(0, 21) + "…" : n.name;
    const title = document.createElementNS(NS, "title"); title.textContent = `${n.kind} ${n.name}\n${n.id}`;
    g.append(r, k, name, title);
    g.addEventListener("click", () => onClick && onClick(n));
    svg.append(g);
  }
  const wrap = document.createElement("div");
  wrap.className = "graph"; wrap.style.overflowX = "auto"; wrap.append(svg);
  container.append(wrap);
}

window.mlkGraph = {drawLineage, KIND_COLOURS};
})();
