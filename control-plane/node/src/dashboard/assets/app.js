// Switchyard dashboard: reads the control node's /api (Traefik's read API and /api/switchyard/*).
// Plain JavaScript, no dependencies. Every value from the API is put in the page as text.
"use strict";

const PER_PAGE = 50;
const state = {
  token: sessionStorage.getItem("switchyard-token") || "",
  tokenRequired: true,
  page: "cluster",
  last: null, // last /api/switchyard/status seen
  lists: {
    routers: { search: "", status: "", page: 1 },
    services: { search: "", status: "", page: 1 },
    middlewares: { search: "", status: "", page: 1 },
    tcprouters: { search: "", status: "", page: 1 },
  },
};

function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function statusCell(s) {
  const t = String(s || "");
  return el("td", { class: "status status-" + t.toLowerCase() }, t);
}

function banner(msg) {
  const b = $("#banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

async function api(path) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const r = await fetch(path, { headers });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!r.ok) {
    const msg = body && body.message ? body.message : text || r.statusText;
    const e = new Error(r.status + ": " + msg);
    e.status = r.status;
    throw e;
  }
  return { body, next: Number(r.headers.get("X-Next-Page") || "1") };
}

function fillTable(id, rows) {
  const tbody = $("#" + id + " tbody");
  tbody.replaceChildren(...rows);
}

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

// ---- pages ----------------------------------------------------------------------------------

async function loadCluster() {
  const { body } = await api("/api/switchyard/nodes");
  $("#cluster-summary").textContent =
    "leader " + (body.leader ?? "none") + " · term " + body.term + " · config version " +
    body.configVersion + " · answered by node " + body.servedBy;
  fillTable("nodes", body.nodes.map((n) => el("tr", { "data-id": n.id },
    el("td", {}, n.id), el("td", {}, n.state), el("td", {}, n.role),
    statusCell(n.leader ? "yes" : ""), el("td", {}, n.term), el("td", {}, n.appliedIndex),
    el("td", {}, n.configVersion), el("td", {}, (n.region || "-") + " / " + (n.zone || "-")),
    el("td", { class: "code" }, n.apiAddr),
    n.reachable ? statusCell("yes") : el("td", { class: "status status-no" }, "no: " + n.error))));
}

async function loadProxies() {
  const { body } = await api("/api/switchyard/proxies");
  const behind = body.proxies.filter((p) => p.lag > 0).length;
  $("#proxies-summary").textContent = body.proxies.length + " attached · config version " +
    body.configVersion + (behind ? " · " + behind + " behind" : "") +
    (body.unreachableNodes.length ? " · nodes not answering: " + body.unreachableNodes.join(", ") : "");
  fillTable("proxies", body.proxies.map((p) => el("tr", { "data-id": p.id },
    el("td", {}, p.id), el("td", {}, (p.region || "-") + " / " + (p.zone || "-")),
    el("td", {}, p.nodeId), el("td", {}, p.appliedVersion),
    el("td", { class: p.lag ? "status status-warning" : "" }, p.lag),
    el("td", { class: p.lastNackError ? "status status-error" : "" },
      p.lastNackVersion ? "v" + p.lastNackVersion + ": " + p.lastNackError : "-"),
    el("td", {}, (p.entryPoints || []).join(", ")), el("td", {}, p.build),
    el("td", {}, ago(p.connectedSinceUnixMs)))));
}

function listQuery(name) {
  const l = state.lists[name];
  const q = new URLSearchParams({ per_page: String(PER_PAGE), page: String(l.page) });
  if (l.search) q.set("search", l.search);
  if (l.status) q.set("status", l.status);
  return q.toString();
}

function pager(name, next) {
  const l = state.lists[name];
  const box = document.querySelector('.pager[data-list="' + name + '"]');
  const prev = el("button", { type: "button" }, "previous");
  prev.disabled = l.page <= 1;
  prev.onclick = () => { l.page -= 1; refresh(); };
  const more = el("button", { type: "button" }, "next");
  more.disabled = next <= l.page;
  more.onclick = () => { l.page = next; refresh(); };
  box.replaceChildren(prev, el("span", { class: "muted" }, "page " + l.page), more);
}

function filters(name) {
  const box = document.querySelector('.filters[data-list="' + name + '"]');
  if (box.childElementCount) return;
  const l = state.lists[name];
  const search = el("input", { type: "search", placeholder: "search", "aria-label": "search" });
  search.oninput = () => { l.search = search.value; l.page = 1; refresh(); };
  const status = el("select", { "aria-label": "status" },
    el("option", { value: "" }, "any status"), el("option", {}, "enabled"),
    el("option", {}, "warning"), el("option", {}, "disabled"));
  status.onchange = () => { l.status = status.value; l.page = 1; refresh(); };
  box.replaceChildren(search, status);
}

// The API list behind a dashboard list: /api/http/NAME, or /api/tcp/routers for "tcprouters".
const listPath = (name) => name === "tcprouters" ? "/api/tcp/routers" : "/api/http/" + name;

async function loadList(name, row) {
  filters(name);
  let res;
  try {
    res = await api(listPath(name) + "?" + listQuery(name));
  } catch (e) {
    // A page past the end after a filter or a deletion: back to the first page.
    if (e.status === 400 && state.lists[name].page > 1) {
      state.lists[name].page = 1;
      res = await api(listPath(name) + "?" + listQuery(name));
    } else {
      throw e;
    }
  }
  fillTable(name, res.body.map(row));
  pager(name, res.next);
}

const errorsCell = (x) => el("td", { class: "status-error" }, (x.error || []).join("; "));

function targets(s) {
  if (s.loadBalancer) return (s.loadBalancer.servers || []).map((x) => x.url + (x.zone ? " (zone " + x.zone + ")" : "")).join(", ");
  if (s.weighted) return (s.weighted.services || []).map((x) => x.name + " ×" + (x.weight ?? 1)).join(", ");
  if (s.mirroring) return s.mirroring.service + " + mirrors";
  if (s.failover) return s.failover.service + " → " + s.failover.fallback;
  return "";
}

const loaders = {
  cluster: loadCluster,
  proxies: loadProxies,
  routers: () => loadList("routers", (r) => el("tr", { "data-name": r.name },
    statusCell(r.status), el("td", {}, r.name), el("td", { class: "code" }, r.rule),
    el("td", {}, r.service), el("td", {}, (r.middlewares || []).join(", ")),
    el("td", {}, (r.using || []).join(", ")), el("td", {}, r.priorityStr), errorsCell(r))),
  tcprouters: () => loadList("tcprouters", (r) => el("tr", { "data-name": r.name },
    statusCell(r.status), el("td", {}, r.name), el("td", { class: "code" }, r.rule),
    el("td", {}, r.tls ? (r.tls.passthrough ? "passthrough" : "terminate") : "plain"),
    el("td", {}, r.service), el("td", {}, (r.middlewares || []).join(", ")),
    el("td", {}, (r.using || []).join(", ")), el("td", {}, r.priorityStr), errorsCell(r))),
  services: () => loadList("services", (s) => el("tr", { "data-name": s.name },
    statusCell(s.status), el("td", {}, s.name), el("td", {}, s.type),
    el("td", { class: "code" }, targets(s)), el("td", {}, (s.usedBy || []).join(", ")), errorsCell(s))),
  middlewares: () => loadList("middlewares", (m) => el("tr", { "data-name": m.name },
    statusCell(m.status), el("td", {}, m.name), el("td", {}, m.type),
    el("td", {}, (m.usedBy || []).join(", ")), errorsCell(m))),
  certificates: async () => {
    const { body } = await api("/api/certificates?per_page=1000");
    fillTable("certificates", body.map((c) => el("tr", { "data-name": c.name },
      statusCell(c.status), el("td", {}, c.name), el("td", {}, (c.sans || []).join(", ")),
      el("td", {}, c.issuerCN), el("td", {}, c.notAfter), el("td", {}, c.source),
      statusCell(c.state), el("td", {}, c.lastError))));
  },
  explain: async () => {},
};

// ---- explain ----------------------------------------------------------------------------------

async function explain(ev) {
  ev.preventDefault();
  const q = new URLSearchParams({ method: $("#explain-method").value, url: $("#explain-url").value });
  for (const line of $("#explain-headers").value.split("\n")) {
    if (line.trim()) q.append("header", line.trim());
  }
  const out = $("#explain-result");
  try {
    const { body: ex } = await api("/api/switchyard/explain?" + q.toString());
    const dl = el("dl", { id: "explain-answer" });
    const row = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, v)); };
    row("config version", ex.version);
    row("path", ex.path + (ex.path !== ex.rawPath ? " (sanitized from " + ex.rawPath + ")" : ""));
    if (ex.winner) {
      row("router", ex.winner.name + " (priority " + ex.winner.priority + ")");
      row("rule", ex.winner.rule);
      row("middlewares", ex.winner.middlewares.length ? ex.winner.middlewares.join(" → ") : "-");
      row("service", ex.winner.service + (ex.service ? " (" + ex.service.kind + ")" : ""));
      if (ex.service) row("targets", ex.service.targets.join(", ") || "-");
    } else if (!ex.refused) {
      row("router", "no router matches: the proxy answers 404");
    }
    if (ex.refused) row("refused", ex.refused.status + ": " + ex.refused.reason);
    const lost = el("ol", {}, ...ex.rejected.map((r) =>
      el("li", {}, r.name + " (priority " + r.priority + "): false: " + r.failed.join(", "))));
    out.replaceChildren(dl, el("h3", {}, ex.rejected.length + " router(s) tried first"), lost);
  } catch (e) {
    out.replaceChildren(el("p", { class: "status-error", id: "explain-error" }, e.message));
  }
}

// ---- navigation, polling ------------------------------------------------------------------------

async function refresh() {
  if (state.tokenRequired && !state.token) {
    banner("This node needs a viewer token: paste one in the token field.");
    return;
  }
  try {
    await loaders[state.page]();
    banner("");
  } catch (e) {
    banner("Cannot load " + state.page + ": " + e.message);
  }
}

function route() {
  const name = (location.hash.replace(/^#\//, "") || "cluster").split("?")[0];
  state.page = loaders[name] ? name : "cluster";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + state.page;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + state.page);
  }
  refresh();
}

// The progressive rollout (`apply --rollout`): a line above every page while one runs, and the
// outcome of the latest one (why it rolled back) until the next.
function showRollout(r) {
  const el = $("#rollout");
  if (!r) {
    el.hidden = true;
    return;
  }
  const active = r.status === "running" || r.status === "paused";
  const stages = r.stages.map((s, i) => (active && i === r.stage ? "[" + s + "]" : s)).join(" → ");
  let text = "Rollout of config v" + r.targetVersion + " (previous v" + r.previousVersion + "): " + r.status +
    " · stage " + (r.stage + 1) + "/" + r.stages.length + " · " + stages;
  if (r.rollbackVersion) text += " · previous config back as v" + r.rollbackVersion;
  if (r.reason) text += " · " + r.reason;
  el.textContent = text;
  el.className = "rollout " + r.status;
  el.hidden = false;
}

async function poll() {
  if (!(state.tokenRequired && !state.token)) {
    try {
      const { body } = await api("/api/switchyard/status");
      $("#live").textContent = "config v" + body.configVersion + " · leader " + (body.leader ?? "none") + " · term " + body.term;
      showRollout(body.rollout);
      const ro = body.rollout ? body.rollout.status + body.rollout.stage : "";
      const key = [body.configVersion, body.leader, body.term, ro].join("/");
      // The first answer only sets the baseline (route() loaded the page). Cluster and proxies
      // pages also change without a new config (lag, reachability).
      const changed = state.last !== null && key !== state.last;
      const live = state.page === "cluster" || state.page === "proxies";
      state.last = key;
      if (changed || live) await refresh();
    } catch (e) {
      $("#live").textContent = "";
      banner("Cannot reach the API: " + e.message);
    }
  }
  setTimeout(poll, 1000);
}

async function start() {
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("switchyard-token", state.token);
    $("#token").value = "";
    refresh();
  });
  $("#explain-form").addEventListener("submit", explain);
  window.addEventListener("hashchange", route);
  try {
    const r = await fetch("/dashboard/auth");
    state.tokenRequired = (await r.json()).tokenRequired;
  } catch (_) {
    state.tokenRequired = true;
  }
  $("#login").hidden = !state.tokenRequired;
  route();
  poll();
}

start();
