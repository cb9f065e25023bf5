// Registry pages: registered models, and one model's versions, aliases, alias history, model card and
// monitoring report. Uses app.js's helpers (api, h, esc, qs, when, short, setNav), loaded after this file.
"use strict";

const aliasPills = aliases => aliases.map(a => `<span class="pill" data-alias="${esc(a)}">@${esc(a)}</span>`).join("");

async function registryPage(params) {
  setNav("registry");
  const filter = params.get("filter") || "";
  app.innerHTML = "";
  const view = h(`<div><h1>Model registry</h1>
    <div class="panel"><div class="row"><input class="filter" id="rfilter" type="text" spellcheck="false"
      placeholder="name like 'digits%' and tags.team = 'vision'"><button class="primary" id="rsearch">Search</button></div>
      <div id="rerror"></div></div><div class="panel" id="models"><p class="muted">Loading…</p></div></div>`);
  app.append(view);
  const input = view.querySelector("#rfilter");
  input.value = filter;
  const go = () => { location.hash = "#/registry" + qs({filter: input.value.trim()}); };
  view.querySelector("#rsearch").onclick = go;
  input.addEventListener("keydown", e => e.key === "Enter" && go());
  let models;
  try { models = await api("/registry/models" + qs({filter})); }
  catch (err) {
    if (err.status === 401) return login(err.message);
    input.classList.add("invalid");
    view.querySelector("#rerror").innerHTML = `<div class="error" data-code="${esc(err.code)}">${esc(err.message)}</div>`;
    view.querySelector("#models").innerHTML = "";
    return;
  }
  view.querySelector("#models").innerHTML = models.length ? `<table id="registered"><tr><th>model</th><th>latest</th><th>aliases</th>
    <th>owner</th><th>description</th><th>updated</th></tr>${models.map(m => `<tr><td><a href="#/registry/${encodeURIComponent(m.name)}">${esc(m.name)}</a></td>
    <td class="num">${m.latest_version ?? ""}</td><td>${Object.entries(m.aliases).map(([a, v]) => `<span class="pill">@${esc(a)} → ${v}</span>`).join("")}</td>
    <td>${esc(m.owner || "")}</td><td>${esc(m.description || "")}</td><td class="muted">${when(m.last_updated_time)}</td></tr>`).join("")}</table>`
    : `<p class="muted">No registered models${filter ? " match" : " yet: register one with <code>mlkeep registry register NAME SOURCE</code>"}.</p>`;
}

async function registryModelPage(name, params) {
  setNav("registry");
  const path = `/registry/models/${encodeURIComponent(name)}`;
  const [model, versions, history] = await Promise.all([api(path), api(path + "/versions"), api(path + "/history")]);
  const chosen = Number(params.get("version")) || model.latest_version;
  app.innerHTML = "";
  const view = h(`<div><div class="muted"><a href="#/registry">Registry</a> / ${esc(name)}</div>
    <h1>${esc(name)} ${Object.entries(model.aliases).map(([a, v]) => `<span class="pill">@${esc(a)} → ${v}</span>`).join("")}</h1>
    ${model.description ? `<p>${esc(model.description)}</p>` : ""}
    <div class="panel"><h2>Versions</h2><table id="versions"><tr><th>version</th><th>aliases</th><th>source</th><th>run</th>
      <th>owner</th><th>registered</th><th>description</th></tr>
      ${versions.slice().reverse().map(v => `<tr data-version="${v.version}" class="${v.version === chosen ? "selected" : ""}">
        <td><a href="#/registry/${encodeURIComponent(name)}?version=${v.version}">${v.version}</a></td><td>${aliasPills(v.aliases)}</td>
        <td class="mono">${sourceLink(v)}</td><td>${v.run_id ? `<a href="#/run/${v.run_id}">${short(v.run_id)}</a>` : ""}</td>
        <td>${esc(v.owner || "")}</td><td class="muted">${when(v.creation_time)}</td><td>${esc(v.description || "")}</td></tr>`).join("")}</table></div>
    <div class="panel"><h2>Alias history</h2>${history.length ? `<table id="history"><tr><th>when</th><th>alias</th><th>from</th><th>to</th><th>who</th><th>why</th></tr>
      ${history.slice().reverse().map(t => `<tr><td class="muted">${when(t.time)}</td><td>@${esc(t.alias)}</td><td class="num">${t.from_version ?? "—"}</td>
        <td class="num">${t.to_version ?? "removed"}</td><td>${esc(t.user || "")}</td><td>${esc(t.reason || "")}</td></tr>`).join("")}</table>`
      : `<p class="muted">No alias has been set yet.</p>`}</div>
    <div class="panel"><h2>Monitoring ${model.aliases.production ? "@production" : `version ${chosen}`}
      <select id="window" style="margin-left:8px">${["1h", "24h", "7d", "all"].map(w => `<option ${w === (params.get("window") || "all") ? "selected" : ""}>${w}</option>`).join("")}</select></h2>
      <div id="monitor"><p class="muted">Loading…</p></div></div>
    <div class="panel"><h2>Model card · version ${chosen}</h2><div id="card"><p class="muted">Loading…</p></div></div></div>`);
  app.append(view);
  const monitorRef = model.aliases.production ? {alias: "production"} : {version: chosen};
  view.querySelector("#window").onchange = e => showMonitor(view.querySelector("#monitor"), name, {...monitorRef, window: e.target.value});
  showMonitor(view.querySelector("#monitor"), name, {...monitorRef, window: params.get("window") || "all"});
  showHtml(view.querySelector("#card"), `${path}/card.html` + qs({version: chosen}), "card");
}

function sourceLink(v) {
  if (v.source_kind === "model") return `<a href="#/lineage/${v.source}">model ${short(v.source)}</a>`;
  const [repo, commit] = v.source.split("@");
  return `<a href="#/repo/${encodeURIComponent(repo)}">${esc(repo)}</a>@${short(commit)}`;
}

async function showMonitor(box, name, params) {
  box.innerHTML = `<p class="muted">Loading…</p>`;
  showHtml(box, `/monitoring/${encodeURIComponent(name)}/report.html` + qs(params), "monitor-report");
}

// A page the library wrote (model card, monitoring report), shown in a sandboxed frame: no script in it runs.
async function showHtml(box, path, id) {
  try {
    const r = await api(path, {raw: true});
    const frame = document.createElement("iframe");
    frame.id = id; frame.setAttribute("sandbox", "allow-same-origin"); frame.className = "doc";
    frame.srcdoc = await r.text();
    frame.onload = () => { frame.style.height = frame.contentDocument.documentElement.scrollHeight + 24 + "px"; };
    box.replaceChildren(frame);
  } catch (err) {
    if (err.status === 401) return login(err.message);
    box.innerHTML = `<p class="muted" data-code="${esc(err.code)}">${esc(err.message)}</p>`;
  }
}
