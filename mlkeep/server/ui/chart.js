// A small canvas line chart: several series, hover read-out, drag to zoom (the page
// then asks the server for that window, downsampled), double-click to reset.
// Also parallel coordinates (SVG). No dependencies.
(() => {
"use strict";

const PALETTE = ["#2f5bd3", "#e8663d", "#1d8a4e", "#9b4dca", "#c2352b", "#0f8b9c", "#b7791f", "#d1467f", "#5a6b8c", "#6aa121"];

function niceTicks(lo, hi, n) {
  if (!isFinite(lo) || !isFinite(hi)) return [];
  if (lo === hi) { lo -= 1; hi += 1; }
  const span = hi - lo, raw = span / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "NaN";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

class LineChart {
  // series: [{name, color, x: number[], y: (number|null)[]}]
  constructor(container, {height = 220, onZoom = null, xLabel = "step"} = {}) {
    this.el = document.createElement("div");
    this.el.className = "chart";
    this.canvas = document.createElement("canvas");
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    this.el.append(this.canvas, this.tip);
    container.append(this.el);
    this.height = height; this.onZoom = onZoom; this.xLabel = xLabel; this.series = []; this.drag = null;
    this.canvas.addEventListener("mousemove", e => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { this.tip.style.display = "none"; this.draw(); });
    this.canvas.addEventListener("mousedown", e => { this.drag = {x0: this.localX(e), x1: this.localX(e)}; });
    window.addEventListener("mouseup", e => this.endDrag(e));
    this.canvas.addEventListener("dblclick", () => this.onZoom && this.onZoom(null, null));
    this.resize = () => this.draw();
    window.addEventListener("resize", this.resize);
  }

  setData(series) { this.series = series; this.draw(); }

  localX(e) { return e.clientX - this.canvas.getBoundingClientRect().left; }

  bounds() {
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (const s of this.series) {
      for (let i = 0; i < s.x.length; i++) {
        const y = s.y[i];
        if (s.x[i] < xmin) xmin = s.x[i];
        if (s.x[i] > xmax) xmax = s.x[i];
        if (y === null || Number.isNaN(y)) continue;
        if (y < ymin) ymin = y;
        if (y > ymax) ymax = y;
      }
    }
    if (ymin === ymax) { ymin -= Math.abs(ymin) * 0.1 || 1; ymax += Math.abs(ymax) * 0.1 || 1; }
    const pad = (ymax - ymin) * 0.06;
    if (xmax === xmin) { xmin -= 1; xmax += 1; }
    return {xmin, xmax, ymin: ymin - pad, ymax: ymax + pad};
  }

  draw() {
    const dpr = window.devicePixelRatio || 1, w = this.el.clientWidth || 600, h = this.height;
    this.canvas.width = w * dpr; this.canvas.height = h * dpr; this.canvas.style.height = h + "px";
    const c = this.canvas.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, h);
    const m = {l: 54, r: 12, t: 10, b: 26};
    this.m = m; this.w = w; this.h = h;
    const empty = !this.series.some(s => s.x.length);
    c.font = "11px system-ui, sans-serif";
    if (empty) { c.fillStyle = "#6b7385"; c.fillText("no points", w / 2 - 24, h / 2); return; }
    const b = this.b = this.bounds();
    const X = v => m.l + (v - b.xmin) / (b.xmax - b.xmin) * (w - m.l - m.r);
    const Y = v => m.t + (1 - (v - b.ymin) / (b.ymax - b.ymin)) * (h - m.t - m.b);
    this.X = X;
    c.strokeStyle = "#eceef3"; c.fillStyle = "#6b7385"; c.lineWidth = 1;
    for (const t of niceTicks(b.ymin, b.ymax, 5)) {
      const y = Math.round(Y(t)) + 0.5;
      c.beginPath(); c.moveTo(m.l, y); c.lineTo(w - m.r, y); c.stroke();
      c.textAlign = "right"; c.fillText(fmt(t), m.l - 6, y + 4);
    }
    c.textAlign = "center";
    const xticks = niceTicks(b.xmin, b.xmax, Math.max(2, Math.floor(w / 90))).filter(t => Number.isInteger(t));
    for (const t of xticks) {
      const x = Math.round(X(t)) + 0.5;
      c.beginPath(); c.moveTo(x, m.t); c.lineTo(x, h - m.b); c.stroke();
      c.fillText(fmt(t), x, h - 8);
    }
    c.strokeStyle = "#c5cad6"; c.strokeRect(m.l + 0.5, m.t + 0.5, w - m.l - m.r, h - m.t - m.b);
    c.save(); c.beginPath(); c.rect(m.l, m.t, w - m.l - m.r, h - m.t - m.b); c.clip();
    this.series.forEach((s, k) => {
      c.strokeStyle = s.color || PALETTE[k % PALETTE.length]; c.lineWidth = 1.6; c.beginPath();
      let pen = false;
      for (let i = 0; i < s.x.length; i++) {
        const y = s.y[i];
        if (y === null || Number.isNaN(y)) { pen = false; continue; }
        const px = X(s.x[i]), py = Y(y);
        if (pen) c.lineTo(px, py); else { c.moveTo(px, py); pen = true; }
      }
      c.stroke();
      if (s.x.length === 1) { c.fillStyle = c.strokeStyle; c.beginPath(); c.arc(X(s.x[0]), Y(s.y[0]), 3, 0, 7); c.fill(); }
    });
    c.restore();
    if (this.drag) {
      c.fillStyle = "rgba(47,91,211,.14)";
      const x0 = Math.min(this.drag.x0, this.drag.x1), x1 = Math.max(this.drag.x0, this.drag.x1);
      c.fillRect(x0, m.t, x1 - x0, h - m.t - m.b);
    }
    if (this.hoverX !== undefined) {
      c.strokeStyle = "#8a93a6"; c.setLineDash([3, 3]); c.beginPath();
      c.moveTo(this.hoverX + 0.5, m.t); c.lineTo(this.hoverX + 0.5, h - m.b); c.stroke(); c.setLineDash([]);
    }
  }

  invert(px) { return this.b.xmin + (px - this.m.l) / (this.w - this.m.l - this.m.r) * (this.b.xmax - this.b.xmin); }

  hover(e) {
    if (!this.b) return;
    const px = this.localX(e);
    if (this.drag) { this.drag.x1 = px; this.draw(); return; }
    const xv = this.invert(px), lines = [];
    this.series.forEach((s, k) => {
      if (!s.x.length) return;
      let lo = 0, hi = s.x.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (s.x[mid] < xv) lo = mid + 1; else hi = mid; }
      if (lo > 0 && Math.abs(s.x[lo - 1] - xv) < Math.abs(s.x[lo] - xv)) lo--;
      lines.push(`<i style="background:${s.color || PALETTE[k % PALETTE.length]};display:inline-block;width:8px;height:8px;margin-right:4px"></i>${escapeHtml(s.name)}: ${fmt(s.y[lo])} @ ${this.xLabel} ${s.x[lo]}`);
    });
    this.hoverX = px; this.draw();
    this.tip.innerHTML = lines.join("<br>");
    this.tip.style.display = lines.length ? "block" : "none";
    this.tip.style.left = Math.min(px + 12, this.w - 200) + "px"; this.tip.style.top = "8px";
  }

  endDrag(e) {
    if (!this.drag) return;
    const d = this.drag; this.drag = null;
    if (Math.abs(d.x1 - d.x0) > 6 && this.onZoom) {
      const a = this.invert(Math.min(d.x0, d.x1)), b = this.invert(Math.max(d.x0, d.x1));
      this.onZoom(Math.floor(a), Math.ceil(b));
    } else this.draw();
  }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[ch]));
}

// Parallel coordinates: one axis per dimension, one polyline per run, coloured by the last axis.
function parallelCoordinates(container, dims, rows) {
  const NS = "http://www.w3.org/2000/svg";
  const w = Math.max(container.clientWidth || 700, 400), h = 260, m = {l: 40, r: 40, t: 28, b: 20};
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`); svg.setAttribute("width", "100%"); svg.setAttribute("height", h);
  const step = (w - m.l - m.r) / Math.max(dims.length - 1, 1);
  const scales = dims.map(d => {
    const vals = rows.map(r => r.values[d]).filter(v => typeof v === "number" && isFinite(v));
    const cats = [...new Set(rows.map(r => r.values[d]).filter(v => typeof v === "string"))].sort();
    const lo = Math.min(...vals), hi = Math.max(...vals);
    return v => {
      let f = 0.5;
      if (typeof v === "number" && isFinite(v)) f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      else if (typeof v === "string") f = cats.length > 1 ? cats.indexOf(v) / (cats.length - 1) : 0.5;
      else return null;
      return m.t + (1 - f) * (h - m.t - m.b);
    };
  });
  const last = dims[dims.length - 1];
  const lastVals = rows.map(r => r.values[last]).filter(v => typeof v === "number");
  const lmin = Math.min(...lastVals), lmax = Math.max(...lastVals);
  rows.forEach((r, i) => {
    const pts = dims.map((d, k) => [m.l + k * step, scales[k](r.values[d])]).filter(p => p[1] !== null);
    const p = document.createElementNS(NS, "polyline");
    p.setAttribute("points", pts.map(q => q.join(",")).join(" "));
    const v = r.values[last], f = lmax > lmin && typeof v === "number" ? (v - lmin) / (lmax - lmin) : 0.5;
    p.setAttribute("stroke", `hsl(${220 - 200 * f}, 70%, 45%)`); p.setAttribute("fill", "none");
    p.setAttribute("stroke-width", "2"); p.setAttribute("opacity", "0.8");
    const t = document.createElementNS(NS, "title"); t.textContent = r.name; p.append(t);
    svg.append(p);
  });
  dims.forEach((d, k) => {
    const x = m.l + k * step, line = document.createElementNS(NS, "line");
    line.setAttribute("x1", x); line.setAttribute("x2", x); line.setAttribute("y1", m.t); line.setAttribute("y2", h - m.b);
    line.setAttribute("stroke", "#5a6b8c"); svg.append(line);
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", x); label.setAttribute("y", 16); label.setAttribute("text-anchor", k === 0 ? "start" : k === dims.length - 1 ? "end" : "middle");
    label.setAttribute("font-size", "11"); label.textContent = d; svg.append(label);
  });
  container.append(svg);
}

window.mlkChart = {LineChart, parallelCoordinates, PALETTE, fmt, escapeHtml};
})();
