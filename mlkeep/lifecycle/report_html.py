"""A monitoring report as one self-contained HTML page: tables plus inline SVG plots, no scripts, no CDN.

Plots: per feature, the reference and live distributions side by side
(drifted features first, then by PSI, at most `MAX_HISTOGRAMS`); PSI over
time for the most shifted features against the threshold.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from mlkeep.lifecycle.drift import FeatureDrift
from mlkeep.lifecycle.entities import utc
from mlkeep.lifecycle.monitoring import MonitorReport

MAX_HISTOGRAMS = 24
MAX_LINES = 6
REFERENCE, LIVE, BAD = "#8c99a6", "#e8833a", "#c0392b"
PALETTE = ("#1f77b4", "#e8833a", "#2ca02c", "#c0392b", "#9467bd", "#8c564b")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}tr.drifted td{background:#fdecea}
.grid{display:flex;flex-wrap:wrap;gap:12px}.plot{border:1px solid #eee;padding:4px}
.bad{color:#c0392b;font-weight:bold}.ok{color:#2e7d32}small{color:#666}
"""


def report_html(report: MonitorReport) -> str:
    """The whole page for `report`."""
    title = f"Monitoring {report.name} version {report.version}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>", _summary(report)]
    if report.performance is not None:
        parts.append(_performance(report))
    parts += ["<h2>Input drift</h2>", _table(report.features), "<h2>Prediction drift</h2>", _table(report.outputs)]
    if report.timeline:
        parts += ["<h2>Drift over time</h2>", _timeline_svg(report)]
    shown = sorted(report.features + report.outputs, key=lambda d: (not d.drifted, -_finite(d.psi)))
    shown = [d for d in shown if d.histogram][:MAX_HISTOGRAMS]
    parts.append(f"<h2>Reference vs live</h2><p><small><span style='color:{REFERENCE}'>■</span> training data "
                 f"&nbsp; <span style='color:{LIVE}'>■</span> live window; shares of rows per bin.</small></p>")
    parts.append("<div class='grid'>" + "".join(_histogram_svg(d) for d in shown) + "</div>")
    if len(report.features) + len(report.outputs) > len(shown):
        parts.append(f"<p><small>{len(report.features) + len(report.outputs) - len(shown)} more columns are in the "
                     "tables above.</small></p>")
    return "\n".join(parts) + "</body></html>\n"


def _summary(r: MonitorReport) -> str:
    verdict = (f"<span class='bad'>{len(r.drifted)} drifted: {escape(', '.join(r.drifted))}</span>" if r.drifted
               else "<span class='ok'>no drift</span>")
    note = f" (the newest {r.predictions} of more)" if r.truncated else ""
    return (f"<p>{escape(r.ref)} · model <code>{escape(r.model_id)}</code> · reference dataset "
            f"<code>{escape(r.dataset_id)}</code></p><p>Window {utc(r.start)} – {utc(r.end)}: {r.predictions} "
            f"logged predictions{note}, {r.rows} rows. Drifted when p &lt; {r.thresholds.p_value:g} and PSI ≥ "
            f"{r.thresholds.psi:g}.</p><p>{verdict}</p>")


def _performance(r: MonitorReport) -> str:
    p = r.performance
    assert p is not None
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{_fmt(v)}</td><td>{_fmt(p.offline.get(k))}</td></tr>"
                   for k, v in p.live.items())
    change = "" if p.change is None else f" Change in {escape(p.metric)}: {p.change:+.4f}."
    return (f"<h2>Live performance</h2><p>{p.labelled_rows} labelled rows; offline: "
            f"{escape(p.offline_evaluation or 'newest evaluation')}.{change}</p>"
            f"<table><tr><th>score</th><th>live</th><th>offline</th></tr>{rows}</table>")


def _table(drifts: list[FeatureDrift]) -> str:
    head = "<tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>PSI</th>" \
           "<th>live rows</th><th>drifted</th></tr>"
    rows = "".join(
        f"<tr class='{'drifted' if d.drifted else ''}'><td>{escape(d.feature)}</td><td>{d.kind}</td><td>{d.test}</td>"
        f"<td>{_fmt(d.statistic)}</td><td>{_fmt(d.p_value)}</td><td>{_fmt(d.psi)}</td><td>{d.live_rows}</td>"
        f"<td>{'yes' if d.drifted else ''}</td></tr>" for d in drifts)
    return f"<table>{head}{rows}</table>"


def _histogram_svg(d: FeatureDrift, width: int = 250, height: int = 150) -> str:
    ref, live = d.histogram["reference"], d.histogram["live"]
    n = len(ref)
    top = max(max(ref, default=0), max(live, default=0)) or 1.0
    pad, plot_h = 22, height - 42
    slot = (width - 2 * pad) / max(n, 1)
    bars = []
    for i, (a, b) in enumerate(zip(ref, live)):
        x = pad + i * slot
        for j, (share, colour) in enumerate(((a, REFERENCE), (b, LIVE))):
            h = plot_h * share / top
            bars.append(f"<rect x='{x + j * slot / 2:.1f}' y='{20 + plot_h - h:.1f}' width='{max(slot / 2 - 0.5, 0.5):.1f}'"
                        f" height='{h:.1f}' fill='{colour}'><title>{share:.3f}</title></rect>")
    if "edges" in d.histogram:
        edges = d.histogram["edges"]
        axis = f"{edges[0]:.3g} … {edges[-1]:.3g}"
    else:
        axis = " ".join(str(x) for x in d.histogram["labels"][:8])
    colour = BAD if d.drifted else "#222"
    return (f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
            f"<text x='4' y='14' font-size='12' fill='{colour}'>{escape(d.feature)} · PSI {_fmt(d.psi)}</text>"
            + "".join(bars)
            + f"<line x1='{pad}' x2='{width - pad}' y1='{20 + plot_h}' y2='{20 + plot_h}' stroke='#999'/>"
            f"<text x='{pad}' y='{height - 6}' font-size='10' fill='#666'>{escape(axis)}</text></svg>")


def _timeline_svg(r: MonitorReport, width: int = 760, height: int = 260) -> str:
    slices = r.timeline
    final = {d.feature: d for d in r.features}
    names = sorted(final, key=lambda n: (not final[n].drifted, -_finite(final[n].psi)))[:MAX_LINES]
    top = max([r.thresholds.psi * 1.5] + [_finite(s.psi.get(n)) for s in slices for n in names])
    left, right, upper, lower = 50, 170, 15, 35
    t0, t1 = slices[0].start, slices[-1].end
    span = max(t1 - t0, 1)

    def xy(t: float, v: float) -> str:
        return f"{left + (t - t0) / span * (width - left - right):.1f},{upper + (1 - v / top) * (height - upper - lower):.1f}"

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>",
             f"<line x1='{left}' x2='{left}' y1='{upper}' y2='{height - lower}' stroke='#999'/>",
             f"<line x1='{left}' x2='{width - right}' y1='{height - lower}' y2='{height - lower}' stroke='#999'/>",
             f"<text x='4' y='{upper + 8}' font-size='10'>{top:.2g}</text>",
             f"<text x='4' y='{height - lower}' font-size='10'>0</text>",
             f"<text x='{left}' y='{height - 18}' font-size='10'>{utc(t0)}</text>",
             f"<text x='{width - right}' y='{height - 18}' font-size='10' text-anchor='end'>{utc(t1)}</text>",
             f"<text x='{left}' y='{height - 4}' font-size='10' fill='#666'>PSI per time slice (dots: drifted); "
             f"dashed: threshold {r.thresholds.psi:g}</text>"]
    a, b = xy(t0, r.thresholds.psi), xy(t1, r.thresholds.psi)
    parts.append(f"<polyline points='{a} {b}' stroke='{BAD}' stroke-dasharray='5,4' fill='none'/>")
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(xy((s.start + s.end) / 2, _finite(s.psi.get(name))) for s in slices)
        parts.append(f"<polyline points='{points}' stroke='{colour}' stroke-width='2' fill='none'/>")
        for sl in slices:  # a dot where the slice passes both tests, not just the PSI line
            if name in sl.drifted:
                x, y = xy((sl.start + sl.end) / 2, _finite(sl.psi.get(name))).split(",")
                parts.append(f"<circle cx='{x}' cy='{y}' r='4' fill='{colour}'><title>{escape(name)} drifted"
                             "</title></circle>")
        parts.append(f"<text x='{width - right + 8}' y='{upper + 14 * i + 10}' font-size='11' fill='{colour}'>"
                     f"{escape(name[:24])}</text>")
    return "".join(parts) + "</svg>"


def _finite(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else 0.0


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.4g}" if isinstance(x, float) else str(x)

