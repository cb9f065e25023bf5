// The mlkeep web UI: hash routes, each page a function that calls the REST API and
// renders. Sorting, filtering, paging and downsampling all happen on the server.
"use strict";

const {LineChart, parallelCoordinates, PALETTE, fmt, escapeHtml: esc} = window.mlkChart;
const app = document.getElementById("app");
const TOKEN_KEY = "mlkeep.token";

// ---------------------------------------------------------------- API
class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {code: "HTTP_" + status, message: "HTTP " + status};
    super(e.message); this.status = status; this.code = e.code; this.position = e.position;
  }
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const r = await fetch("/api" + path, {method: opts.method || "GET", headers, body: opts.body});
  if (opts.raw && r.ok) return r;
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    (Array.isArray(v) ? v : [v]).forEach(x => u.append(k, x));
  }
  const s = u.toString();
  return s ? "?" + s : "";
}

// ---------------------------------------------------------------- helpers
function h(html) { const t = document.createElement("template"); t.innerHTML = html.trim(); return t.content.firstElementChild; }
const short = id => (id || "").slice(0, 8);
const when = ms => ms ? new Date(ms).toLocaleString() : "";
function duration(a, b) {
  if (!a || !b) return "";
  const s = (b - a) / 1000;
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}
const badge = s => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
function kv(obj) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return `<p class="muted">none</p>`;
  return `<div class="kv">${keys.map(k => `<div>${esc(k)}</div><div class="mono">${esc(obj[k])}</div>`).join("")}</div>`;
}
function linkFor(kind, id) {
  if (kind === "run") return `#/run/${id}`;
  return `#/lineage/${id}`;
}
function showError(err) {
  if (err.status === 401) return login(err.message);
  app.innerHTML = "";
  app.append(h(`<div class="panel"><h1>Something went wrong</h1><div class="error">${esc(err.code || "")}: ${esc(err.message)}</div></div>`));
}
function setNav(name) {
  document.querySelectorAll("[data-nav]").forEach(a => a.classList.toggle("active", a.dataset.nav === name));
}

// ---------------------------------------------------------------- login
function login(message) {
  setNav("");
  app.innerHTML = "";
  const el = h(`<div class="panel login"><h1>Sign in</h1>
    <p class="muted">This server requires a token. Create one with <code>mlkeep token create --role read</code>.</p>
    <div class="row"><input type="password" id="token" placeholder="mlk_…" style="flex:1"><button class="primary" id="go">Sign in</button></div>
    ${message ? `<div class="error">${esc(message)}</div>` : ""}</div>`);
  app.append(el);
  const go = () => { localStorage.setItem(TOKEN_KEY, el.querySelector("#token").value.trim()); route(); };
  el.querySelector("#go").onclick = go;
  el.querySelector("#token").addEventListener("keydown", e => e.key === "Enter" && go());
}

async function whoami() {
  try {
    const me = await api("/whoami");
    const health = await api("/health");
    document.getElementById("who").innerHTML = health.auth
      ? `${esc(me.role)} token · <a href="#" id="logout" style="color:#c9d3ee">sign out</a>` : "local · no auth";
    const out = document.getElementById("logout");
    if (out) out.onclick = e => { e.preventDefault(); localStorage.removeItem(TOKEN_KEY); route(); };
  } catch (e) { document.getElementById("who").textContent = ""; }
}

// ---------------------------------------------------------------- runs table
const runsState = {filter: "", order: null, desc: true, columns: null, tokens: [null], page: 0, selected: new Set(), pageSize: 50};

function colKey(c) { return `${c.kind}s.${c.name}`; }
function cellValue(run, c) {
  if (c.kind === "metric") { const m = run.metrics[c.name]; return m ? m.value : undefined; }
  if (c.kind === "param") return run.params[c.name];
  return run.tags[c.name];
}

async function runsPage() {
  setNav("runs");
  const st = runsState;
  app.innerHTML = "";
  const view = h(`<div>
    <h1>Runs <span class="muted" id="total"></span></h1>
    <div class="panel">
      <div class="row">
        <input class="filter" id="filter" type="text" spellcheck="false" placeholder="metrics.accuracy > 0.9 and params.model = 'rf'">
        <button class="primary" id="search">Search</button>
        <div class="chooser"><button id="columns">Columns ▾</button><div class="menu" id="menu" hidden></div></div>
        <button id="compare" disabled>Compare</button>
      </div>
      <div id="filter-error"></div>
    </div>
    <div class="table-wrap"><table id="runs"><thead></thead><tbody></tbody></table></div>
    <div class="row pager"><button id="prev">← Previous</button><span class="muted" id="pageinfo"></span><button id="next">Next →</button></div>
  </div>`);
  app.append(view);
  const input = view.querySelector("#filter");
  input.value = st.filter;
  const search = () => { st.filter = input.value; st.tokens = [null]; st.page = 0; load(); };
  view.querySelector("#search").onclick = search;
  input.addEventListener("keydown", e => e.key === "Enter" && search());
  view.querySelector("#prev").onclick = () => { if (st.page > 0) { st.page--; load(); } };
  view.querySelector("#next").onclick = () => { if (st.tokens[st.page + 1]) { st.page++; load(); } };
  view.querySelector("#compare").onclick = () => { location.hash = "#/compare?ids=" + [...st.selected].join(","); };
  const menu = view.querySelector("#menu");
  view.querySelector("#columns").onclick = () => { menu.hidden = !menu.hidden; };
  let runs = [];

  async function load() {
    const errBox = view.querySelector("#filter-error");
    let page;
    try {
      page = await api("/search/runs" + qs({filter: st.filter, order_by: st.order ? `${st.order} ${st.desc ? "DESC" : "ASC"}` : null,
        page_size: st.pageSize, page_token: st.tokens[st.page]}));
    } catch (err) {
      if (err.status === 401) return login(err.message);
      input.classList.add("invalid");
      errBox.innerHTML = `<div class="error" data-code="${esc(err.code)}">${esc(err.message)}</div>`;
      return;
    }
    input.classList.remove("invalid"); errBox.innerHTML = "";
    runs = page.runs;
    st.tokens[st.page + 1] = page.next_page_token;
    const known = new Map();
    for (const r of runs) {
      for (const k of Object.keys(r.metrics)) known.set("metrics." + k, {kind: "metric", name: k});
      for (const k of Object.keys(r.params)) known.set("params." + k, {kind: "param", name: k});
      for (const k of Object.keys(r.tags)) known.set("tags." + k, {kind: "tag", name: k});
    }
    if (st.columns === null) st.columns = [...known.values()].filter(c => c.kind !== "tag").slice(0, 8);
    for (const c of st.columns) known.set(colKey(c), c);
    menu.innerHTML = [...known.values()].sort((a, b) => colKey(a).localeCompare(colKey(b))).map(c =>
      `<label><input type="checkbox" data-col="${esc(colKey(c))}" ${st.columns.some(x => colKey(x) === colKey(c)) ? "checked" : ""}> ${esc(colKey(c))}</label>`).join("")
      || `<span class="muted">no params, metrics or tags yet</span>`;
    menu.querySelectorAll("input").forEach(box => box.onchange = () => {
      const c = known.get(box.dataset.col);
      st.columns = box.checked ? [...st.columns, c] : st.columns.filter(x => colKey(x) !== box.dataset.col);
      render();
    });
    view.querySelector("#prev").disabled = st.page === 0;
    view.querySelector("#next").disabled = !page.next_page_token;
    const of = page.total == null ? "" : ` of ${page.total.toLocaleString()}`;
    view.querySelector("#pageinfo").textContent = runs.length ? `runs ${st.page * st.pageSize + 1}–${st.page * st.pageSize + runs.length}${of}` : "no runs match";
    view.querySelector("#total").textContent = page.total == null ? "" : `${page.total.toLocaleString()} run${page.total === 1 ? "" : "s"}`;
    render();
  }

  function header(label, sortKey, cls = "") {
    const active = st.order === sortKey;
    return `<th class="sortable ${cls}" data-sort="${esc(sortKey)}">${esc(label)}${active ? `<span class="arrow">${st.desc ? "▼" : "▲"}</span>` : ""}</th>`;
  }

  function render() {
    const table = view.querySelector("#runs");
    table.querySelector("thead").innerHTML = `<tr><th><input type="checkbox" id="all"></th>${header("name", "attributes.name")}
      ${header("experiment", "attributes.experiment")}${header("status", "attributes.status")}${header("started", "attributes.start_time")}<th>duration</th>
      ${st.columns.map(c => header(c.name, colKey(c), "kind-" + c.kind)).join("")}</tr>`;
    table.querySelector("tbody").innerHTML = runs.map(r => `<tr data-id="${r.id}" class="${st.selected.has(r.id) ? "selected" : ""}">
      <td><input type="checkbox" class="pick" ${st.selected.has(r.id) ? "checked" : ""}></td>
      <td><a href="#/run/${r.id}">${esc(r.name)}</a>${r.parent_run_id ? ` <span class="muted" title="child of ${esc(r.parent_run_id)}">↳</span>` : ""}</td>
      <td>${esc(r.experiment)}</td><td>${badge(r.status)}</td><td>${when(r.start_time)}</td><td>${duration(r.start_time, r.end_time)}</td>
      ${st.columns.map(c => { const v = cellValue(r, c); return `<td class="${c.kind === "metric" ? "num" : ""}">${v === undefined ? "" : esc(c.kind === "metric" ? fmt(v) : v)}</td>`; }).join("")}
    </tr>`).join("");
    table.querySelectorAll("th.sortable").forEach(th => th.onclick = () => {
      const k = th.dataset.sort;
      if (st.order === k) st.desc = !st.desc; else { st.order = k; st.desc = k.startsWith("metrics.") || k === "attributes.start_time"; }
      st.tokens = [null]; st.page = 0; load();
    });
    table.querySelectorAll("input.pick").forEach(box => box.onchange = () => {
      const id = box.closest("tr").dataset.id;
      if (box.checked) st.selected.add(id); else st.selected.delete(id);
      box.closest("tr").classList.toggle("selected", box.checked);
      view.querySelector("#compare").disabled = st.selected.size < 2;
      view.querySelector("#compare").textContent = st.selected.size ? `Compare (${st.selected.size})` : "Compare";
    });
    table.querySelector("#all").onchange = e => {
      runs.forEach(r => e.target.checked ? st.selected.add(r.id) : st.selected.delete(r.id)); render();
      view.querySelector("#compare").disabled = st.selected.size < 2;
    };
    view.querySelector("#compare").disabled = st.selected.size < 2;
  }
  await load();
}

// ---------------------------------------------------------------- metric charts
function metricChart(container, runIds, key, names) {
  const head = h(`<div class="chart-head"><h2>${esc(key)}</h2><span class="muted" data-info></span><span class="spacer"></span><button data-reset hidden>Reset zoom</button></div>`);
  container.append(head);
  let window_ = [null, null];
  const chart = new LineChart(container, {onZoom: (a, b) => { window_ = [a, b]; load(); }});
  head.querySelector("[data-reset]").onclick = () => { window_ = [null, null]; load(); };
  async function load() {
    const width = Math.max(container.clientWidth, 300);
    const series = await Promise.all(runIds.map(id => api(`/runs/${id}/metrics/${encodeURIComponent(key)}/history` +
      qs({max_points: Math.round(width * 2), min_step: window_[0], max_step: window_[1]})).catch(() => null)));
    const shown = series.map((s, i) => s && {name: names[i], color: PALETTE[i % PALETTE.length], x: s.steps, y: s.values}).filter(Boolean);
    chart.setData(shown);
    const total = series.reduce((n, s) => n + (s ? s.total : 0), 0), drawn = series.reduce((n, s) => n + (s ? s.steps.length : 0), 0);
    head.querySelector("[data-info]").textContent = drawn < total ? `${drawn.toLocaleString()} of ${total.toLocaleString()} points (downsampled by the server)` : `${total.toLocaleString()} points`;
    head.querySelector("[data-reset]").hidden = window_[0] === null;
    container.dataset.points = String(drawn);
  }
  load();
  return chart;
}

// ---------------------------------------------------------------- run page
async function runPage(id) {
  setNav("runs");
  const [run, entities, artifacts] = await Promise.all([api(`/runs/${id}`), api(`/runs/${id}/entities`), api(`/runs/${id}/artifacts`)]);
  app.innerHTML = "";
  const view = h(`<div>
    <div class="muted"><a href="#/runs">Runs</a> / ${esc(run.experiment)}</div>
    <h1>${esc(run.name)} ${badge(run.status)}</h1>
    <div class="grid">
      <div class="panel"><h2>Overview</h2><div class="kv">
        <div>id</div><div class="mono">${esc(run.id)}</div><div>experiment</div><div>${esc(run.experiment)}</div>
        <div>started</div><div>${when(run.start_time)}</div><div>ended</div><div>${when(run.end_time)}</div>
        <div>duration</div><div>${duration(run.start_time, run.end_time)}</div>
        ${run.parent_run_id ? `<div>parent</div><div><a href="#/run/${run.parent_run_id}">${short(run.parent_run_id)}</a></div>` : ""}
        <div>creator</div><div>${esc(run.creator || "")}</div></div>
        ${run.failure ? `<div class="error" style="white-space:pre-wrap">${esc(run.failure)}</div>` : ""}</div>
      <div class="panel"><h2>Params</h2>${kv(run.params)}</div>
      <div class="panel"><h2>Tags</h2>${kv(run.tags)}</div>
    </div>
    <h1 style="margin-top:20px">Metrics</h1><div class="grid" id="charts"></div>
    <div class="panel" style="margin-top:16px"><h2>Artifacts</h2><div id="artifacts"></div><div id="preview"></div></div>
    <div id="datasets"></div>
    <div class="panel"><h2>Models, predictions, evaluations</h2><div id="models"></div></div>
    <div class="panel"><div class="row"><h2>Lineage neighbourhood</h2><span class="spacer"></span><a href="#/lineage/${run.id}">open the lineage view →</a></div><div id="lineage"></div></div>
    <div class="panel"><h2>Environment</h2>${kv(run.environment)}</div>
  </div>`);
  app.append(view);
  const charts = view.querySelector("#charts");
  const keys = Object.keys(run.metrics).sort();
  if (!keys.length) charts.append(h(`<p class="muted">No metrics logged.</p>`));
  for (const k of keys) {
    const box = h(`<div class="panel" data-metric="${esc(k)}"></div>`);
    charts.append(box);
    metricChart(box, [run.id], k, [run.name]);
  }
  // artifacts: download and preview
  const art = view.querySelector("#artifacts");
  art.innerHTML = artifacts.length ? `<table><tr><th>path</th><th>size</th><th></th></tr>${artifacts.map(a => `<tr><td class="mono">${esc(a.path)}</td>
    <td class="num">${a.size.toLocaleString()} B</td><td><button data-preview="${esc(a.path)}">Preview</button> <button data-download="${esc(a.path)}">Download</button></td></tr>`).join("")}</table>`
    : `<p class="muted">No artifacts.</p>`;
  art.querySelectorAll("[data-download]").forEach(b => b.onclick = () => download(`/runs/${id}/artifacts/${b.dataset.download}`, b.dataset.download.split("/").pop()));
  art.querySelectorAll("[data-preview]").forEach(b => b.onclick = () => preview(view.querySelector("#preview"), `/runs/${id}/artifacts/${b.dataset.preview}`, b.dataset.preview));
  // datasets with statistics and histograms
  const ds = view.querySelector("#datasets");
  for (const d of entities.datasets) ds.append(datasetPanel(d));
  // models etc.
  const models = view.querySelector("#models");
  const rows = [
    ...entities.models.map(m => ["model", m.id, m.name, `${esc(m.learning_algorithm)} · ${m.hyperparameters.length} hyperparameters`]),
    ...entities.predictions.map(p => ["prediction", p.id, p.name || "prediction", `${p.num_rows} rows`]),
    ...entities.evaluations.map(e => ["evaluation", e.id, e.name || "evaluation", Object.entries(e.scores).map(([k, v]) => `${esc(k)} = ${fmt(v)}`).join(", ")]),
  ];
  models.innerHTML = rows.length ? `<table>${rows.map(([k, i, n, d]) => `<tr><td><span class="pill">${k}</span></td><td><a href="#/lineage/${i}">${esc(n)}</a></td><td>${d}</td></tr>`).join("")}</table>` : `<p class="muted">None.</p>`;
  const nb = await api(`/lineage/${id}/neighbourhood?depth=1`);
  mlkGraph.drawLineage(view.querySelector("#lineage"), nb, {rootId: id, onClick: n => { location.hash = linkFor(n.kind, n.id); }});
}

function datasetPanel(d) {
  const cols = Object.keys(d.statistics || {}).slice(0, 24);
  const el = h(`<div class="panel" data-dataset="${d.id}"><h2>Dataset ${esc(d.name)} <span class="muted">v${esc(d.version)} · ${d.num_rows.toLocaleString()} rows · ${d.columns.length} columns</span></h2>
    <div class="table-wrap" style="max-height:360px"><table><tr><th>column</th><th>type</th><th>count</th><th>mean</th><th>std</th><th>min</th><th>max</th><th>histogram</th></tr>
    ${cols.map(c => { const s = d.statistics[c] || {}, t = (d.columns.find(x => x.name === c) || {}).typing || "", hist = (d.histograms || {})[c];
      const counts = hist ? (hist.counts || hist.frequencies || []) : [], top = Math.max(...counts, 1);
      return `<tr><td class="mono">${esc(c)}</td><td>${esc(t)}</td><td class="num">${s.count ?? ""}</td><td class="num">${s.mean !== undefined ? fmt(s.mean) : ""}</td>
        <td class="num">${s.std !== undefined ? fmt(s.std) : ""}</td><td class="num">${s.min !== undefined ? fmt(s.min) : ""}</td><td class="num">${s.max !== undefined ? fmt(s.max) : ""}</td>
        <td><div class="hist" style="width:140px;height:28px">${counts.map(n => `<span style="height:${Math.max(2, 100 * n / top)}%" title="${n}"></span>`).join("")}</div></td></tr>`; }).join("")}
    </table></div>${Object.keys(d.statistics || {}).length > cols.length ? `<p class="muted">first ${cols.length} of ${Object.keys(d.statistics).length} columns</p>` : ""}</div>`);
  return el;
}

async function download(path, name) {
  const r = await api(path, {raw: true});
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a"); a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function preview(box, path, name) {
  const r = await api(path + "?inline=true", {raw: true});
  const type = r.headers.get("content-type") || "";
  box.innerHTML = "";
  if (type.startsWith("image/")) {
    const img = document.createElement("img"); img.src = URL.createObjectURL(await r.blob()); img.alt = name;
    const p = h(`<div class="preview"></div>`); p.append(img); box.append(p);
  } else {
    const blob = await r.blob(), text = await blob.slice(0, 200000).text();
    const p = h(`<pre class="preview"></pre>`); p.textContent = text + (blob.size > 200000 ? "\n…" : ""); box.append(p);
  }
}

// ---------------------------------------------------------------- compare
async function comparePage(params) {
  setNav("runs");
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  const runs = await api("/runs/get", {method: "POST", json: {ids}});
  app.innerHTML = "";
  const names = runs.map(r => r.name);
  const view = h(`<div><div class="muted"><a href="#/runs">Runs</a> / compare</div><h1>Compare ${runs.length} runs</h1>
    <div class="panel"><h2>Params</h2><div class="table-wrap" id="params"></div></div>
    <div class="panel"><h2>Metrics (last value)</h2><div class="table-wrap" id="metrics"></div></div>
    <div class="panel"><div class="row"><h2>Parallel coordinates</h2><span class="spacer"></span><label class="muted">colour by <select id="pcmetric"></select></label></div><div id="pc"></div></div>
    <h1 style="margin-top:20px">Metric charts</h1><div class="legend" id="legend"></div><div class="grid" id="charts" style="margin-top:8px"></div></div>`);
  app.append(view);
  const table = (keys, get, numeric) => `<table class="diff"><tr><th>key</th>${runs.map((r, i) => `<th><i style="display:inline-block;width:10px;height:10px;background:${PALETTE[i % PALETTE.length]};margin-right:5px"></i><a href="#/run/${r.id}">${esc(r.name)}</a></th>`).join("")}</tr>
    ${keys.map(k => { const vals = runs.map(r => get(r, k)); const differs = new Set(vals.map(v => String(v))).size > 1;
      return `<tr class="${differs ? "differs-row" : ""}"><td class="mono">${esc(k)}</td>${vals.map(v => `<td class="${differs ? "differs" : ""} ${numeric ? "num" : ""}">${v === undefined ? "—" : esc(numeric ? fmt(v) : v)}</td>`).join("")}</tr>`; }).join("")}</table>`;
  const pkeys = [...new Set(runs.flatMap(r => Object.keys(r.params)))].sort();
  const mkeys = [...new Set(runs.flatMap(r => Object.keys(r.metrics)))].sort();
  view.querySelector("#params").innerHTML = pkeys.length ? table(pkeys, (r, k) => r.params[k], false) : `<p class="muted">No params.</p>`;
  view.querySelector("#metrics").innerHTML = mkeys.length ? table(mkeys, (r, k) => r.metrics[k] ? r.metrics[k].value : undefined, true) : `<p class="muted">No metrics.</p>`;
  const sel = view.querySelector("#pcmetric");
  sel.innerHTML = mkeys.map(k => `<option>${esc(k)}</option>`).join("");
  const drawPc = () => {
    const box = view.querySelector("#pc"); box.innerHTML = "";
    const m = sel.value, dims = [...pkeys.map(k => "params." + k), ...(m ? ["metrics." + m] : [])];
    if (dims.length < 2) { box.append(h(`<p class="muted">Needs at least one param and one metric.</p>`)); return; }
    const num = v => (v !== undefined && v !== "" && !isNaN(Number(v))) ? Number(v) : v;
    parallelCoordinates(box, dims, runs.map(r => ({name: r.name, values: Object.fromEntries([
      ...pkeys.map(k => ["params." + k, num(r.params[k])]), ...(m ? [["metrics." + m, r.metrics[m] ? r.metrics[m].value : undefined]] : [])])})));
  };
  sel.onchange = drawPc; drawPc();
  view.querySelector("#legend").innerHTML = runs.map((r, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(r.name)}</span>`).join("");
  for (const k of mkeys) {
    const box = h(`<div class="panel" data-metric="${esc(k)}"></div>`);
    view.querySelector("#charts").append(box);
    metricChart(box, runs.map(r => r.id), k, names);
  }
}

// ---------------------------------------------------------------- lineage
async function lineagePage(id, params) {
  setNav("lineage");
  app.innerHTML = "";
  const depth = Number(params.get("depth") || 2);
  const view = h(`<div><h1>Lineage</h1><div class="panel"><div class="row">
    <input type="text" id="eid" placeholder="id of a dataset, run, model, prediction or evaluation" style="flex:1" class="mono">
    <label class="muted">depth <select id="depth">${[1, 2, 3, 4, 6, 10].map(d => `<option ${d === depth ? "selected" : ""}>${d}</option>`).join("")}</select></label>
    <button class="primary" id="show">Show</button></div><div id="lerr"></div></div><div id="graph"></div><div id="detail"></div></div>`);
  app.append(view);
  const go = () => { location.hash = `#/lineage/${view.querySelector("#eid").value.trim()}?depth=${view.querySelector("#depth").value}`; };
  view.querySelector("#show").onclick = go;
  view.querySelector("#depth").onchange = go;
  view.querySelector("#eid").addEventListener("keydown", e => e.key === "Enter" && go());
  if (!id) {
    const datasets = await api("/datasets");
    view.querySelector("#graph").append(h(`<div class="panel"><h2>Datasets</h2>${datasets.length ? `<table>${datasets.map(d => `<tr><td><a href="#/lineage/${d.id}">${esc(d.name)}</a></td><td>v${esc(d.version)}</td><td>${d.num_rows} rows</td><td class="muted mono">${short(d.id)}</td></tr>`).join("")}</table>` : `<p class="muted">No datasets yet.</p>`}<p class="muted">Pick one, or paste any id above, to see what went into it and what came out of it.</p></div>`));
    return;
  }
  view.querySelector("#eid").value = id;
  let graph;
  try { graph = await api(`/lineage/${id}/neighbourhood?depth=${depth}`); }
  catch (err) { if (err.status === 401) return login(err.message); view.querySelector("#lerr").innerHTML = `<div class="error">${esc(err.message)}</div>`; return; }
  const root = graph.nodes.find(n => n.id === id);
  view.querySelector("h1").innerHTML = `Lineage of ${esc(root ? root.kind : "")} <span class="mono">${esc(root ? root.name : id)}</span>`;
  const legend = Object.entries(mlkGraph.KIND_COLOURS).map(([k, [f, s]]) => `<span><i style="background:${f};border:1px solid ${s}"></i>${k}</span>`).join("");
  view.querySelector("#graph").append(h(`<div class="legend" style="margin-bottom:8px">${legend}<span class="muted">· upstream on the left, downstream on the right · click a node to follow it</span></div>`));
  mlkGraph.drawLineage(view.querySelector("#graph"), graph, {rootId: id, onClick: n => {
    location.hash = n.id === id && n.kind === "run" ? `#/run/${n.id}` : `#/lineage/${n.id}?depth=${depth}`;
  }});
  if (root) view.querySelector("#detail").append(await entityDetail(root));
}

async function entityDetail(node) {
  const box = h(`<div class="panel" style="margin-top:16px"></div>`);
  try {
    if (node.kind === "run") { const r = await api(`/runs/${node.id}`); box.innerHTML = `<h2>Run <a href="#/run/${r.id}">${esc(r.name)}</a> ${badge(r.status)}</h2>${kv(r.params)}`; }
    else if (node.kind === "dataset") { box.replaceWith(datasetPanel(await api(`/datasets/${node.id}`))); return datasetPanel(await api(`/datasets/${node.id}`)); }
    else if (node.kind === "model") { const m = await api(`/models/${node.id}`); box.innerHTML = `<h2>Model ${esc(m.name)}</h2><div class="kv"><div>algorithm</div><div class="mono">${esc(m.learning_algorithm)}</div><div>framework</div><div>${esc(m.framework || "")} ${esc(m.framework_version || "")}</div>${m.run_id ? `<div>run</div><div><a href="#/run/${m.run_id}">${short(m.run_id)}</a></div>` : ""}</div><h2 style="margin-top:12px">Hyperparameters</h2>${kv(Object.fromEntries(m.hyperparameters.map(p => [p.name, p.value])))}`; }
    else if (node.kind === "evaluation") { const e = await api(`/evaluations/${node.id}`); box.innerHTML = `<h2>Evaluation ${esc(e.name || "")}</h2>${kv(Object.fromEntries(Object.entries(e.scores).map(([k, v]) => [k, fmt(v)])))}${e.confusion_matrix ? `<h2 style="margin-top:12px">Confusion matrix</h2><table style="width:auto">${e.confusion_matrix.map(r => `<tr>${r.map(v => `<td class="num">${v}</td>`).join("")}</tr>`).join("")}</table>` : ""}`; }
    else if (node.kind === "prediction") { const p = await api(`/predictions/${node.id}`); box.innerHTML = `<h2>Prediction ${esc(p.name || "")}</h2><div class="kv"><div>rows</div><div>${p.num_rows}</div><div>columns</div><div>${p.columns.map(c => esc(c.name)).join(", ")}</div></div>`; }
    else box.innerHTML = `<h2>${esc(node.kind)} ${esc(node.name)}</h2>`;
  } catch (err) { box.innerHTML = `<div class="error">${esc(err.message)}</div>`; }
  return box;
}

// ---------------------------------------------------------------- repositories
async function reposPage() {
  setNav("repos");
  const repos = await api("/repositories");
  app.innerHTML = "";
  app.append(h(`<div><h1>Repositories</h1><div class="panel">${repos.length ? `<table><tr><th>repository</th><th>branches</th><th>tags</th></tr>${repos.map(r => `<tr><td><a href="#/repo/${encodeURIComponent(r.name)}">${esc(r.name)}</a></td>
    <td>${Object.keys(r.branches).map(b => `<span class="pill">${esc(b)}</span>`).join("")}</td><td>${Object.keys(r.tags).map(t => `<span class="pill tag">${esc(t)}</span>`).join("")}</td></tr>`).join("")}</table>`
    : `<p class="muted">No repositories yet: commit a model with <code>store.repo("name").commit(model)</code>.</p>`}</div></div>`));
}

async function repoPage(name, params) {
  setNav("repos");
  const refs = await api(`/repositories/${encodeURIComponent(name)}/refs`);
  const branch = params.get("ref") || (refs.branches.main ? "main" : Object.keys(refs.branches)[0]);
  const commits = await api(`/repositories/${encodeURIComponent(name)}/log` + qs({ref: branch, limit: 200}));
  const labels = {};
  for (const [b, c] of Object.entries(refs.branches)) (labels[c] = labels[c] || []).push(`<span class="pill">${esc(b)}</span>`);
  for (const [t, c] of Object.entries(refs.tags)) (labels[c] = labels[c] || []).push(`<span class="pill tag">${esc(t)}</span>`);
  app.innerHTML = "";
  const view = h(`<div><div class="muted"><a href="#/repos">Repositories</a> / ${esc(name)}</div><h1>${esc(name)}</h1>
    <div class="panel"><div class="row"><label class="muted">branch <select id="branch">${Object.keys(refs.branches).map(b => `<option ${b === branch ? "selected" : ""}>${esc(b)}</option>`).join("")}</select></label>
    <span class="spacer"></span><span class="muted">pick two commits to diff</span><button id="diff" disabled>Diff</button></div>
    <div style="display:flex;margin-top:10px"><svg id="lanes" width="60"></svg><table id="commits" style="flex:1"></table></div></div><div id="diffview"></div></div>`);
  app.append(view);
  view.querySelector("#branch").onchange = e => { location.hash = `#/repo/${encodeURIComponent(name)}?ref=${encodeURIComponent(e.target.value)}`; };
  const rowH = 37;
  view.querySelector("#commits").innerHTML = commits.map(c => `<tr data-id="${c.id}" style="height:${rowH}px"><td><input type="checkbox" class="pick"></td><td class="mono">${short(c.id)}</td>
    <td>${(labels[c.id] || []).join("")} ${esc(c.message || "")}</td><td class="muted">${esc(c.author || "")}</td><td class="muted">${when(c.time)}</td><td>${esc(c.kind)}</td>
    <td><button data-checkout="${c.id}">Download .${c.kind === "sklearn" ? "pkl" : "safetensors"}</button></td></tr>`).join("");
  drawLanes(view.querySelector("#lanes"), commits, rowH);
  const picked = [];
  view.querySelectorAll("input.pick").forEach(box => box.onchange = () => {
    const id = box.closest("tr").dataset.id;
    if (box.checked) picked.push(id); else picked.splice(picked.indexOf(id), 1);
    while (picked.length > 2) { const old = picked.shift(); view.querySelector(`tr[data-id="${old}"] input`).checked = false; }
    view.querySelector("#diff").disabled = picked.length !== 2;
  });
  view.querySelector("#diff").onclick = () => {
    const order = commits.map(c => c.id), [a, b] = [...picked].sort((x, y) => order.indexOf(y) - order.indexOf(x));
    showDiff(view.querySelector("#diffview"), name, a, b);
  };
  view.querySelectorAll("[data-checkout]").forEach(b => b.onclick = () => download(`/repositories/${encodeURIComponent(name)}/checkout?ref=${b.dataset.checkout}`, `${name}-${short(b.dataset.checkout)}.${b.textContent.split(".").pop()}`));
  if (commits.length >= 2) showDiff(view.querySelector("#diffview"), name, commits[1].id, commits[0].id);
}

function drawLanes(svg, commits, rowH) {
  // First parents go straight down one lane; merged parents get their own lane.
  const NS = "http://www.w3.org/2000/svg", index = new Map(commits.map((c, i) => [c.id, i])), lane = new Map();
  commits.forEach(c => {
    if (!lane.has(c.id)) lane.set(c.id, 0);
    c.parents.forEach((p, k) => { if (!lane.has(p)) lane.set(p, k === 0 ? lane.get(c.id) : Math.min(lane.get(c.id) + k, 3)); });
  });
  svg.setAttribute("height", commits.length * rowH + 10);
  const x = l => 14 + l * 14, y = i => i * rowH + rowH / 2 + 2;
  commits.forEach((c, i) => c.parents.forEach(p => {
    if (!index.has(p)) return;
    const path = document.createElementNS(NS, "path"), j = index.get(p);
    path.setAttribute("d", `M${x(lane.get(c.id))},${y(i)} C${x(lane.get(c.id))},${y(i) + rowH / 2} ${x(lane.get(p))},${y(j) - rowH / 2} ${x(lane.get(p))},${y(j)}`);
    path.setAttribute("stroke", PALETTE[lane.get(p) % PALETTE.length]); path.setAttribute("fill", "none"); path.setAttribute("stroke-width", "2");
    svg.append(path);
  }));
  commits.forEach((c, i) => {
    const dot = document.createElementNS(NS, "circle");
    dot.setAttribute("cx", x(lane.get(c.id))); dot.setAttribute("cy", y(i)); dot.setAttribute("r", c.parents.length > 1 ? 6 : 5);
    dot.setAttribute("fill", "#fff"); dot.setAttribute("stroke", PALETTE[lane.get(c.id) % PALETTE.length]); dot.setAttribute("stroke-width", "2.5");
    svg.append(dot);
  });
}

async function showDiff(box, name, a, b) {
  box.innerHTML = `<div class="panel"><p class="muted">Computing diff…</p></div>`;
  let d;
  try { d = await api(`/repositories/${encodeURIComponent(name)}/diff` + qs({a, b})); }
  catch (err) { box.innerHTML = `<div class="panel"><div class="error">${esc(err.message)}</div></div>`; return; }
  const maxL2 = Math.max(...d.tensors.map(t => t.l2 || 0), 1e-12);
  const shape = s => s ? "(" + s.join(", ") + ")" : "";
  box.innerHTML = `<div class="panel" id="diff-panel"><h2>Diff <span class="mono">${short(a)}</span> → <span class="mono">${short(b)}</span>
    <span class="muted">· ${d.tensors.length} tensors differ, ${d.unchanged} unchanged</span></h2>
    ${d.tensors.length ? `<div class="table-wrap" style="max-height:460px"><table><tr><th>tensor</th><th>change</th><th>shape</th><th>changed</th><th>L2 of change</th><th>max |Δ|</th></tr>
    ${d.tensors.map(t => `<tr><td class="mono">${esc(t.name)}</td><td class="status-${t.status}">${t.status}</td><td class="mono">${t.shape_a && t.shape_b && shape(t.shape_a) !== shape(t.shape_b) ? shape(t.shape_a) + " → " + shape(t.shape_b) : shape(t.shape_b || t.shape_a)}</td>
      <td>${t.fraction_changed !== null ? `<span class="bar"><span style="width:${100 * t.fraction_changed}%"></span></span> ${(100 * t.fraction_changed).toFixed(1)}%` : ""}</td>
      <td>${t.l2 !== null ? `<span class="bar"><span style="width:${100 * t.l2 / maxL2}%;background:#e8663d"></span></span> ${fmt(t.l2)}` : ""}</td><td class="num">${t.max_abs !== null ? fmt(t.max_abs) : ""}</td></tr>`).join("")}</table></div>` : ""}
    ${Object.keys(d.hyperparameters).length ? `<h2 style="margin-top:12px">Hyperparameters</h2><table>${Object.entries(d.hyperparameters).map(([k, [x, y]]) => `<tr><td class="mono">${esc(k)}</td><td>${esc(x ?? "—")}</td><td>→</td><td class="differs">${esc(y ?? "—")}</td></tr>`).join("")}</table>` : ""}
    ${d.architecture.length ? `<h2 style="margin-top:12px">Architecture</h2><pre class="preview">${esc(d.architecture.join("\n"))}</pre>` : ""}</div>`;
}

// ---------------------------------------------------------------- router
async function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "runs";
  const [path, query] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent), params = new URLSearchParams(query || "");
  whoami();
  try {
    if (parts[0] === "run" && parts[1]) await runPage(parts[1]);
    else if (parts[0] === "compare") await comparePage(params);
    else if (parts[0] === "lineage") await lineagePage(parts[1], params);
    else if (parts[0] === "repos") await reposPage();
    else if (parts[0] === "repo" && parts[1]) await repoPage(parts[1], params);
    else if (parts[0] === "registry" && parts[1]) await registryModelPage(parts[1], params);
    else if (parts[0] === "registry") await registryPage(params);
    else if (parts[0] === "intermediates") await intermediatesPage();
    else if (parts[0] === "intermediate" && parts[1]) await intermediatePage(parts[1], params);
    else await runsPage();
  } catch (err) { showError(err); }
  document.body.dataset.ready = hash;
}

window.addEventListener("hashchange", route);
route();
