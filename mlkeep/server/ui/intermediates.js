// Intermediates pages: the captured layers, and for one layer the top-k examples of a neuron with their
// inputs (drawn as images when a row is a square of pixels), an activation heatmap and per-class means.
// Uses app.js's helpers (api, h, esc, qs, fmt, short, setNav), loaded after this file.
"use strict";

const HEAT_COLUMNS = 64;  // columns shown in the heatmap around the chosen neuron

async function intermediatesPage() {
  setNav("intermediates");
  const items = await api("/intermediates");
  app.innerHTML = "";
  app.append(h(`<div><h1>Intermediates</h1><div class="panel">${items.length ? `<table id="intermediates"><tr><th>name</th><th>layer</th>
    <th>model version</th><th>dataset</th><th>codec</th><th>status</th><th class="num">rows × columns</th><th class="num">compression</th>
    <th class="num">queries</th></tr>${items.map(i => `<tr data-id="${i.id}"><td><a href="#/intermediate/${i.id}">${esc(i.name)}</a></td>
    <td class="mono">${esc(i.layer)}</td><td><a href="#/repo/${encodeURIComponent(i.repository)}">${esc(i.repository)}</a>@${short(i.commit_id)}</td>
    <td><a href="#/lineage/${i.dataset_id}">${short(i.dataset_id)}</a></td><td>${esc(i.codec)}</td><td>${esc(i.status)}</td>
    <td class="num">${i.n_rows.toLocaleString()} × ${i.n_cols.toLocaleString()}</td>
    <td class="num">${i.stored_bytes ? (i.raw_bytes / i.stored_bytes).toFixed(1) + "×" : "—"}</td><td class="num">${i.n_queries}</td></tr>`).join("")}</table>`
    : `<p class="muted">No intermediates yet: capture a model's layers with <code>store.intermediates.capture(model, data)</code>.</p>`}</div></div>`));
}

async function intermediatePage(ref, params) {
  setNav("intermediates");
  const info = await api(`/intermediates/${encodeURIComponent(ref)}`);
  const neuron = Math.min(Number(params.get("neuron")) || 0, info.n_cols - 1), k = Number(params.get("k")) || 8;
  app.innerHTML = "";
  const view = h(`<div><div class="muted"><a href="#/intermediates">Intermediates</a> / ${esc(info.name)}</div>
    <h1>${esc(info.name)} <span class="muted" style="font-size:14px">${info.n_rows.toLocaleString()} rows × ${info.n_cols.toLocaleString()} columns · ${esc(info.codec)} · ${esc(info.status)}</span></h1>
    <div class="panel"><div class="row"><label>neuron <input type="number" id="neuron" min="0" max="${info.n_cols - 1}" value="${neuron}" style="width:90px"></label>
      <label>k <input type="number" id="k" min="1" max="100" value="${k}" style="width:70px"></label>
      <label><input type="checkbox" id="smallest"> lowest instead</label><button class="primary" id="run">Top-k</button>
      <span class="muted" id="answered"></span></div><div id="qerror"></div></div>
    <div class="grid"><div class="panel"><h2>Top-${k} examples of neuron ${neuron}</h2><div id="topk"><p class="muted">Loading…</p></div></div>
      <div class="panel"><h2>Activations of these examples</h2><p class="muted" style="margin-top:0">rows: the examples above · columns: neurons (click one to pick it)</p><div id="heat"></div>
      <h2 style="margin-top:14px">Mean of neuron ${neuron} per class</h2><div id="classes"></div></div></div></div>`);
  app.append(view);
  const go = () => { location.hash = `#/intermediate/${info.id}` + qs({neuron: view.querySelector("#neuron").value, k: view.querySelector("#k").value,
    smallest: view.querySelector("#smallest").checked ? 1 : ""}); };
  view.querySelector("#run").onclick = go;
  view.querySelector("#smallest").checked = params.get("smallest") === "1";
  view.querySelectorAll("#neuron, #k").forEach(el => el.addEventListener("keydown", e => e.key === "Enter" && go()));
  let top;
  try { top = await api(`/intermediates/${info.id}/topk` + qs({neuron, k, largest: params.get("smallest") === "1" ? "false" : "true"})); }
  catch (err) { view.querySelector("#qerror").innerHTML = `<div class="error">${esc(err.message)}</div>`; view.querySelector("#topk").innerHTML = ""; return; }
  view.querySelector("#answered").textContent = `answered by ${top.source === "read" ? "reading the stored copy" : "re-running the model"}`;
  const inputs = await api(`/intermediates/${info.id}/inputs` + qs({rows: top.rows})).catch(() => null);
  const lo = Math.min(...top.values, 0), hi = Math.max(...top.values, 1e-12);
  view.querySelector("#topk").innerHTML = `<table id="topk-table"><tr><th>#</th><th>row</th><th>input</th><th>class</th><th>activation</th></tr>
    ${top.rows.map((r, i) => `<tr data-row="${r}"><td class="muted">${i + 1}</td><td class="mono">${r}</td><td class="input"></td>
    <td>${inputs && inputs.targets ? esc(inputs.targets[i]) : ""}</td>
    <td><span class="bar"><span style="width:${100 * (top.values[i] - lo) / ((hi - lo) || 1)}%"></span></span> ${fmt(top.values[i])}</td></tr>`).join("")}</table>`;
  if (inputs) view.querySelectorAll("#topk-table tr[data-row]").forEach((tr, i) => tr.querySelector(".input").append(inputCell(inputs.inputs[i], inputs.shape)));
  const first = Math.max(0, Math.min(neuron - HEAT_COLUMNS / 2, info.n_cols - HEAT_COLUMNS)), columns = [];
  for (let c = first; c < Math.min(first + HEAT_COLUMNS, info.n_cols); c++) columns.push(c);
  const values = (await api(`/intermediates/${info.id}/values` + qs({rows: top.rows, columns}))).values;
  view.querySelector("#heat").append(heatmap(values, columns, neuron, c => {
    view.querySelector("#neuron").value = c; go();
  }));
  const stats = await api(`/intermediates/${info.id}/stats` + qs({columns: [neuron]})).catch(() => null);
  view.querySelector("#classes").innerHTML = stats ? classBars(stats.stats) : `<p class="muted">The dataset has no classes.</p>`;
}

// A row of inputs: an image when it is a square of pixels (or channels × square), else its first numbers.
function inputCell(row, shape) {
  const size = shape.length === 1 ? Math.round(Math.sqrt(shape[0])) : shape[shape.length - 1];
  const square = shape.length === 1 ? size * size === shape[0] && size >= 4 : shape[shape.length - 2] === size;
  if (!square) return document.createTextNode(row.slice(0, 6).map(fmt).join(", ") + (row.length > 6 ? ", …" : ""));
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size; canvas.className = "digit";
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(size, size);
  const pixels = row.slice(0, size * size), lo = Math.min(...pixels), hi = Math.max(...pixels);
  pixels.forEach((v, i) => { const g = 255 - Math.round(255 * (v - lo) / ((hi - lo) || 1)); img.data.set([g, g, g, 255], i * 4); });
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function heatmap(values, columns, neuron, pick) {
  const cell = Math.max(12, Math.min(28, Math.floor(480 / columns.length))), canvas = document.createElement("canvas");
  canvas.width = columns.length * cell; canvas.height = values.length * cell; canvas.className = "heatmap";
  canvas.dataset.rows = values.length; canvas.dataset.columns = columns.length;
  const ctx = canvas.getContext("2d"), flat = values.flat(), lo = Math.min(...flat), hi = Math.max(...flat);
  values.forEach((row, i) => row.forEach((v, j) => {
    const t = (v - lo) / ((hi - lo) || 1);
    ctx.fillStyle = `rgb(${Math.round(255 - 208 * t)},${Math.round(255 - 164 * t)},${Math.round(255 - 44 * t)})`;
    ctx.fillRect(j * cell, i * cell, cell, cell);
  }));
  const at = columns.indexOf(neuron);
  if (at >= 0) { ctx.strokeStyle = "#e8663d"; ctx.lineWidth = 2; ctx.strokeRect(at * cell + 1, 1, cell - 2, values.length * cell - 2); }
  canvas.title = `neurons ${columns[0]}–${columns[columns.length - 1]}`;
  canvas.onclick = e => pick(columns[Math.floor(e.offsetX / (canvas.clientWidth / columns.length))]);
  return canvas;
}

function classBars(stats) {
  const hi = Math.max(...stats.map(s => Math.abs(s.mean)), 1e-12);
  return `<table id="classes-table"><thead><tr><th>class</th><th class="num">examples</th><th>mean</th></tr></thead><tbody>${stats.map(s => `<tr><td>${esc(s.group)}</td><td class="num">${s.count}</td>
    <td><span class="bar"><span style="width:${100 * Math.abs(s.mean) / hi}%"></span></span> ${fmt(s.mean)}</td></tr>`).join("")}</tbody></table>`;
}
