// The wasmq web UI: login, jobs (live over server-sent events), job details,
// plugins and a submit form built from each plugin's params JSON Schema.
"use strict";

const TOKEN_KEY = "wasmq.token";
const STATES = ["New", "Preparing", "Suspended", "Ready", "Active", "Pausing", "Paused",
  "Complete", "Failing", "Failed", "Cancelling", "Cancelled"];
const FINAL = new Set(["Complete", "Failed", "Cancelled"]);

// ---- small DOM helpers: text always goes through text nodes, never innerHTML ----

/** Makes an element: h("td", {class: "x", onclick: f}, "text", child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function view() { return document.getElementById("view"); }
function show(...children) { view().replaceChildren(...children); }

function when(text) {
  if (!text) return "—";
  const d = new Date(text);
  if (isNaN(d)) return text;
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function whenMs(ms) { return ms ? when(new Date(ms).toISOString()) : "—"; }

// ---- the API ----

class ApiError extends Error {
  constructor(status, field, message) { super(message); this.status = status; this.field = field; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

/** Calls the API with the token; throws ApiError with the server's field and message. */
async function api(method, path, body, rawResponse) {
  const headers = { Authorization: `Bearer ${token() || ""}` };
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let res;
  try { res = await fetch(path, init); } catch (e) { throw new ApiError(0, null, `cannot reach the server: ${e.message}`); }
  if (!res.ok) {
    let field = null, message = `${res.status} ${res.statusText}`;
    try { const j = await res.json(); if (j.error) { field = j.error.field; message = j.error.message; } } catch (_) { /* not JSON */ }
    if (res.status === 401 && method === "GET" && path !== "/api/v1/jobs?limit=1") { signOut(message); }
    throw new ApiError(res.status, field, message);
  }
  if (rawResponse) return res;
  if (res.status === 204) return null;
  return res.json();
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---- live updates: one server-sent events stream read with fetch (to send the token) ----

const live = {
  listeners: new Set(),
  controller: null,
  retry: 1000,

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  },

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    setLive(null);
  },

  async run(signal) {
    while (!signal.aborted) {
      setLive(false);
      try {
        const res = await fetch("/api/v1/events", { headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" }, signal });
        if (res.status === 401) { signOut("the API token is no longer valid"); return; }
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        await this.read(res.body.getReader(), signal);
      } catch (e) {
        if (signal.aborted) return;
      }
      setLive(false);
      await new Promise((r) => setTimeout(r, this.retry));
      this.retry = Math.min(this.retry * 2, 8000);
    }
  },

  async read(reader, signal) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || signal.aborted) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // keep-alive comment
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (name === "event") type = val;
          else if (name === "data") data.push(val);
        }
        if (data.length === 0) continue;
        if (type === "ready") { this.retry = 1000; setLive(true); }
        let payload = null;
        try { payload = JSON.parse(data.join("\n")); } catch (_) { continue; }
        for (const f of this.listeners) f(type, payload);
      }
    }
  },
};

function setLive(on) {
  const el = document.getElementById("live");
  el.hidden = on === null;
  el.classList.toggle("on", on === true);
  document.getElementById("live-text").textContent = on ? "live" : "reconnecting";
}

/** Listens to live events while the current view is shown. */
function onLive(f) { live.listeners.add(f); cleanup.push(() => live.listeners.delete(f)); }

// ---- routing ----

let cleanup = [];
function leaveView() { for (const f of cleanup) f(); cleanup = []; }
function every(ms, f) { const t = setInterval(f, ms); cleanup.push(() => clearInterval(t)); }

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  live.stop();
  loginMessage = message || null;
  if (location.hash !== "#/login") location.hash = "#/login"; else route();
}

let loginMessage = null;

function route() {
  leaveView();
  const hash = location.hash || "#/jobs";
  const signedIn = !!token();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
  if (!signedIn && hash !== "#/login") { location.hash = "#/login"; return; }
  if (signedIn) live.start();
  const parts = hash.slice(2).split("?")[0].split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  if (parts[0] === "login") return loginView();
  if (parts[0] === "jobs" && parts[1]) return detailsView(decodeURIComponent(parts[1]));
  if (parts[0] === "submit") return submitView();
  if (parts[0] === "plugins") return pluginsView();
  return jobsView();
}

// ---- login ----

function loginView() {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "API token", required: true });
  const error = h("div", { class: "banner error", id: "login-error", hidden: !loginMessage }, loginMessage || "");
  loginMessage = null;
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        await api("GET", "/api/v1/jobs?limit=1");
        location.hash = "#/jobs";
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        error.textContent = err.message;
        error.hidden = false;
        button.disabled = false;
      }
    },
  }, h("label", { for: "token" }, "API token"), input, button);
  show(h("div", { class: "panel login" },
    h("h1", {}, "Sign in to wasmq"),
    h("p", { class: "muted" }, "Use an API token: the admin token is in the data directory's admin-token file, or create one with wasmq token create."),
    error, form));
  input.focus();
}

// ---- jobs ----

function stateBadge(state) { return h("span", { class: `badge ${state}`, "data-state": state }, state); }

function progressCell(job) {
  const pct = job.progress ? job.progress.percent : 0;
  return h("div", { class: "progress" },
    h("progress", { class: job.state, max: 100, value: pct, "aria-label": "progress" }),
    h("span", { class: "percent" }, `${pct}%`));
}

/** The buttons a job's allowed actions call for. */
function actionButtons(job, after) {
  const act = (label, cls, fn) => h("button", { class: `small ${cls}`, type: "button", "data-action": label.toLowerCase(), onclick: async (e) => {
    e.target.disabled = true;
    try { await fn(); if (after) after(); } catch (err) { alert(err.message); } finally { e.target.disabled = false; }
  } }, label);
  const post = (what) => () => api("POST", `/api/v1/jobs/${encodeURIComponent(job.id)}/${what}`);
  const out = [];
  if (job.cancellable) out.push(act("Stop", "danger", post("cancel")));
  if (job.pausable) out.push(act("Pause", "", post("pause")));
  if (job.resumable) out.push(act("Resume", "", post("resume")));
  if (job.confirmable) out.push(act("Confirm", "", post("confirm")));
  if (job.deletable) out.push(act("Delete", "danger", async () => {
    await api("DELETE", `/api/v1/jobs/${encodeURIComponent(job.id)}`);
    for (const row of document.querySelectorAll(`tr[data-job-id="${CSS.escape(job.id)}"]`)) row.remove();
    if (location.hash.startsWith("#/jobs/")) location.hash = "#/jobs";
  }));
  return out;
}

function jobRow(job) {
  return h("tr", { "data-job-id": job.id, "data-state": job.state },
    h("td", { class: "name" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.name || job.id.slice(0, 8)),
      h("small", {}, job.path)),
    h("td", {}, job.type),
    h("td", {}, stateBadge(job.state)),
    h("td", {}, progressCell(job)),
    h("td", {}, job.createdBy),
    h("td", { class: "when" }, when(job.startedAt)),
    h("td", { class: "when" }, when(job.completedAt)),
    h("td", { class: "actions" }, actionButtons(job, null),
      h("button", { class: "small", type: "button", "data-action": "details", onclick: () => { location.hash = `#/jobs/${encodeURIComponent(job.id)}`; } }, "Details")));
}

async function jobTypes() {
  try {
    const { plugins } = await api("GET", "/api/v1/plugins");
    return [...new Set(plugins.filter((p) => p.status === "active").flatMap((p) => p.jobTypes))].sort();
  } catch (_) { return []; }
}

function jobsView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const state = h("select", { id: "filter-state", "aria-label": "state" }, h("option", { value: "" }, "All states"), STATES.map((s) => h("option", { value: s }, s)));
  const type = h("select", { id: "filter-type", "aria-label": "type" }, h("option", { value: "" }, "All types"));
  const text = h("input", { type: "search", id: "filter-text", placeholder: "Search name or description", "aria-label": "text" });
  state.value = params.get("state") || "";
  text.value = params.get("text") || "";
  const body = h("tbody", { id: "jobs" });
  const total = h("span", { class: "muted", id: "jobs-total" });
  const error = h("div", { class: "banner error", hidden: true });
  let generation = 0;

  const filters = () => ({ state: state.value, type: type.value, text: text.value.trim() });
  const matches = (job) => {
    const f = filters();
    if (f.state && job.state !== f.state) return false;
    if (f.type && job.type !== f.type) return false;
    if (f.text) {
      const t = f.text.toLowerCase();
      if (!`${job.name || ""} ${job.description || ""}`.toLowerCase().includes(t)) return false;
    }
    return true;
  };
  const load = async () => {
    const mine = ++generation;
    try {
      const page = await api("GET", `/api/v1/jobs${query({ ...filters(), limit: 200 })}`);
      if (mine !== generation) return;
      error.hidden = true;
      body.replaceChildren(...(page.jobs.length ? page.jobs.map(jobRow)
        : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No jobs match."))]));
      total.textContent = `${page.total} job${page.total === 1 ? "" : "s"}`;
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  };
  let timer = null;
  const reload = () => { clearTimeout(timer); timer = setTimeout(load, 250); };
  state.addEventListener("change", load);
  type.addEventListener("change", load);
  text.addEventListener("input", reload);

  onLive((event, payload) => {
    if (event === "ready") return load();
    if (event === "deleted") {
      for (const row of body.querySelectorAll(`tr[data-job-id="${CSS.escape(payload.id)}"]`)) row.remove();
      return;
    }
    if (event !== "job") return;
    const old = body.querySelector(`tr[data-job-id="${CSS.escape(payload.id)}"]`);
    if (old && matches(payload)) old.replaceWith(jobRow(payload));
    else if (old) old.remove();
    else if (matches(payload)) reload();
  });

  show(
    h("div", { class: "head" }, h("h1", {}, "Jobs"), total, h("div", { class: "spacer" }),
      h("a", { href: "#/submit" }, h("button", { class: "primary", type: "button" }, "Submit a job"))),
    h("div", { class: "filters" }, state, type, text),
    error,
    h("div", { class: "panel flush" }, h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["Name", "Type", "State", "Progress", "Submitter", "Started", "Completed", ""].map((c) => h("th", {}, c)))),
      body)));
  jobTypes().then((types) => {
    type.append(...types.map((t) => h("option", { value: t }, t)));
    type.value = params.get("type") || "";
    load();
  });
}

// ---- job details ----

function detailsView(id) {
  const path = `/api/v1/jobs/${encodeURIComponent(id)}`;
  const header = h("div", { class: "head" });
  const facts = h("dl", { class: "facts", id: "job-facts" });
  const counts = h("div", { class: "counts", id: "job-counts" });
  const params = h("pre", { class: "params", id: "job-params" });
  const log = h("pre", { id: "job-log" }, "…");
  const tasks = h("tbody", { id: "job-tasks" });
  const tasksTotal = h("span", { class: "muted" });
  const error = h("div", { class: "banner error", hidden: true });
  let current = null;

  const render = (job) => {
    // One last look at the items once the job ends (they refresh only while it runs).
    if (current && !FINAL.has(current.state) && FINAL.has(job.state)) refreshTasks();
    current = job;
    header.replaceChildren(
      h("a", { href: "#/jobs" }, "← Jobs"),
      h("h1", {}, job.name || job.id), stateBadge(job.state), progressCell(job),
      h("div", { class: "spacer" }),
      ...actionButtons(job, refresh),
      h("button", { class: "small", type: "button", "data-action": "csv", onclick: () => downloadCsv(job) }, "Download CSV"));
    const fact = (k, v) => [h("dt", {}, k), h("dd", { "data-fact": k }, v === null || v === undefined || v === "" ? "—" : v)];
    facts.replaceChildren(...[
      fact("Id", h("span", { class: "mono" }, job.id)),
      fact("Type", job.type),
      fact("Path", h("span", { class: "mono" }, job.path)),
      fact("Excluded paths", (job.excludedPaths || []).join(", ")),
      fact("Description", job.description),
      fact("Submitter", job.createdBy),
      fact("Created", when(job.createdAt)),
      fact("Started", when(job.startedAt)),
      fact("Completed", when(job.completedAt)),
      fact("Plugin", `${job.plugin.name} ${job.plugin.version}`),
      fact("Plugin digest", h("span", { class: "mono" }, job.plugin.digest)),
      fact("Fuel used", Number(job.fuelUsed).toLocaleString()),
      fact("CPU", `${Number(job.cpuMs).toFixed(1)} ms`),
      fact("Priority", job.priority),
      fact("Server", job.serverName),
      fact("Progress message", job.progress.message),
      fact("Error", job.error)].flat());
    const c = job.counts;
    counts.replaceChildren(...[["total", c.total], ["succeeded", c.succeeded], ["failed", c.failed], ["running", c.running], ["pending", c.pending]]
      .map(([k, v]) => h("div", { "data-count": k }, h("b", {}, v), h("span", { class: "muted" }, k))));
    params.textContent = prettyJson(job.params);
  };
  const refresh = async () => {
    try { render(await api("GET", path)); error.hidden = true; } catch (e) { error.textContent = e.message; error.hidden = false; }
  };
  const refreshLog = async () => {
    try {
      const page = await api("GET", `${path}/logs?tail=200`);
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = page.lines.join("\n") || "(no log lines yet)";
      if (stick) log.scrollTop = log.scrollHeight;
    } catch (_) { /* shown by refresh */ }
  };
  const refreshTasks = async () => {
    try {
      const page = await api("GET", `${path}/tasks?limit=500`);
      tasksTotal.textContent = page.hasMore ? `first ${page.tasks.length} of ${page.total}` : `${page.total} items`;
      tasks.replaceChildren(...(page.tasks.length ? page.tasks.map((t) => h("tr", { "data-seq": t.seq },
        h("td", { class: "mono" }, t.path), h("td", {}, h("span", { class: `badge ${t.state === "succeeded" ? "Complete" : t.state === "failed" ? "Failed" : "Active"}` }, t.state)),
        h("td", {}, t.code ?? "—"), h("td", {}, t.message || ""), h("td", {}, t.attempts),
        h("td", {}, Number(t.fuelUsed).toLocaleString()), h("td", { class: "when" }, whenMs(t.finishedAt))))
        : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No items yet."))]));
    } catch (_) { /* shown by refresh */ }
  };

  onLive((event, payload) => {
    if (event === "job" && payload.id === id) render(payload);
    if (event === "deleted" && payload.id === id) location.hash = "#/jobs";
  });
  every(1000, refreshLog);
  every(2000, () => { if (current && !FINAL.has(current.state)) refreshTasks(); });

  show(header, error,
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Job"), facts),
      h("div", {},
        h("div", { class: "panel" }, h("h2", {}, "Items"), counts),
        h("div", { class: "panel" }, h("h2", {}, "Parameters"), params))),
    h("div", { class: "panel" }, h("h2", {}, "Log (live tail)"), log),
    h("div", { class: "panel flush" },
      h("div", { class: "head", style: "padding: 16px 20px 0" }, h("h2", {}, "Per-item report"), tasksTotal),
      h("table", {}, h("thead", {}, h("tr", {}, ["Item", "State", "Status", "Message", "Attempts", "Fuel", "Finished"].map((c) => h("th", {}, c)))), tasks)));
  refresh();
  refreshLog();
  refreshTasks();
}

/** Indented JSON with arrays of plain values kept on one (wrapping) line. */
function prettyJson(value) {
  return JSON.stringify(value, null, 2)
    .replace(/\[\s+((?:"(?:[^"\\]|\\.)*"|[-\w.]+)(?:,\s+(?:"(?:[^"\\]|\\.)*"|[-\w.]+))*)\s+\]/g,
      (_, items) => `[${items.replace(/,\n\s*/g, ", ")}]`); // a newline is never inside a JSON string
}

/** Fetches the job's CSV report with the token and saves it through a blob link. */
async function downloadCsv(job) {
  try {
    const res = await api("GET", `/api/v1/jobs/${encodeURIComponent(job.id)}/report`, undefined, true);
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `${job.name || job.id}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { alert(e.message); }
}

// ---- plugins ----

async function pluginsView() {
  show(h("h1", {}, "Plugins"), h("p", { class: "muted" }, "Loading…"));
  let data;
  try { data = await api("GET", "/api/v1/plugins"); } catch (e) { show(h("h1", {}, "Plugins"), h("div", { class: "banner error" }, e.message)); return; }
  const rows = data.plugins.map((p) => h("tr", { "data-plugin": p.name },
    h("td", {}, h("b", {}, p.name)), h("td", { class: "mono" }, p.version), h("td", {}, stateBadge(p.status)),
    h("td", {}, p.jobTypes.join(", ")), h("td", {}, (p.capabilities || []).join(", ") || "—"),
    h("td", { class: "mono", title: p.digest }, `${p.digest.slice(0, 16)}…`), h("td", { class: "when" }, when(p.loadedAt)),
    h("td", {}, h("details", {}, h("summary", {}, "schema"), h("pre", { class: "params" }, JSON.stringify(p.paramsSchema, null, 2))))));
  const rejected = (data.rejected || []).map((r) => h("tr", {},
    h("td", { class: "mono" }, r.file || r.path || ""), h("td", {}, r.reason || r.error || JSON.stringify(r))));
  show(h("h1", {}, "Plugins"),
    h("div", { class: "panel flush" }, h("table", { id: "plugins-table" },
      h("thead", {}, h("tr", {}, ["Name", "Version", "Status", "Job types", "Capabilities", "Digest", "Loaded", "Params"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No plugins loaded."))))),
    h("h2", {}, "Rejected files"),
    h("div", { class: "panel flush" }, h("table", { id: "rejected-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Reason"))),
      h("tbody", {}, rejected.length ? rejected : h("tr", {}, h("td", { colspan: 2, class: "empty" }, "None."))))));
}

// ---- submit ----

/**
 * One input per property of a params JSON Schema. Returns {fields, read}: read()
 * gives the params object or throws ApiError naming the field it could not read.
 */
function paramsFields(schema) {
  const props = schema && schema.type === "object" && schema.properties;
  const required = new Set((schema && schema.required) || []);
  if (!props) {
    const area = h("textarea", { name: "params", id: "param-raw", placeholder: "{}" }, schema ? "{}" : "{}");
    return {
      fields: [fieldRow("params", "params (JSON)", area, "No form for this schema: write the params as JSON.", false)],
      read: () => parseJson("params", area.value || "{}"),
    };
  }
  const fields = [];
  const readers = [];
  for (const [name, prop] of Object.entries(props)) {
    const field = `params.${name}`;
    const req = required.has(name);
    const desc = prop.description || "";
    const enumOf = (p) => p && (p.enum || (p.const !== undefined ? [p.const] : null));
    let input, read;
    if (enumOf(prop)) {
      input = h("select", { name: field }, req ? null : h("option", { value: "" }, "—"),
        enumOf(prop).map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      if (prop.default !== undefined) input.value = JSON.stringify(prop.default);
      read = () => (input.value === "" ? undefined : JSON.parse(input.value));
    } else if (prop.type === "boolean") {
      input = h("input", { type: "checkbox", name: field, checked: prop.default === true });
      read = () => input.checked;
    } else if (prop.type === "integer" || prop.type === "number") {
      input = h("input", { type: "text", inputmode: "numeric", name: field, value: prop.default ?? "" });
      read = () => {
        const v = input.value.trim();
        if (v === "") return undefined;
        const n = Number(v);
        if (!Number.isFinite(n) || (prop.type === "integer" && !Number.isInteger(n))) {
          throw new ApiError(400, field, `must be ${prop.type === "integer" ? "an integer" : "a number"}`);
        }
        return n;
      };
    } else if (prop.type === "string") {
      input = h("input", { type: "text", name: field, value: prop.default ?? "" });
      read = () => (input.value === "" ? undefined : input.value);
    } else if (prop.type === "array" && prop.items && (enumOf(prop.items) || prop.items.type === "string")) {
      const options = enumOf(prop.items);
      input = h("textarea", { name: field, rows: 3, placeholder: "one per line or comma-separated" },
        Array.isArray(prop.default) ? prop.default.join("\n") : "");
      read = () => {
        const items = input.value.split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== "");
        return items.length || req ? items : undefined;
      };
      if (options) input.dataset.options = options.join(", ");
    } else {
      input = h("textarea", { name: field, rows: 3, placeholder: "JSON" }, prop.default !== undefined ? JSON.stringify(prop.default) : "");
      read = () => (input.value.trim() === "" ? undefined : parseJson(field, input.value));
    }
    let hint = desc;
    if (input.dataset && input.dataset.options) hint = `${desc ? `${desc} ` : ""}One of: ${input.dataset.options}.`;
    else if (input.tagName === "TEXTAREA" && input.placeholder === "JSON") hint = `${desc ? `${desc} ` : ""}Any JSON value.`;
    fields.push(fieldRow(field, name, input, hint, req));
    readers.push([name, read]);
  }
  return {
    fields,
    read: () => {
      const out = {};
      for (const [name, read] of readers) { const v = read(); if (v !== undefined) out[name] = v; }
      return out;
    },
  };
}

function parseJson(field, text) {
  try { return JSON.parse(text); } catch (e) { throw new ApiError(400, field, `is not valid JSON: ${e.message}`); }
}

/** A label and an input with room for its error; the row's data-field is the API's field name. */
function fieldRow(field, label, input, hint, required) {
  input.id = input.id || `f-${field.replace(/[^a-zA-Z0-9]/g, "-")}`;
  return [
    h("label", { class: "lbl", for: input.id }, label, required ? h("span", { class: "req" }, " *") : null),
    h("div", { class: "field", "data-field": field }, input, hint ? h("div", { class: "hint" }, hint) : null,
      h("div", { class: "field-error", hidden: true })),
  ];
}

/** Shows an error next to the field the server named, or its closest parent; else in the banner. */
function showFieldError(form, banner, err) {
  let name = err.field || "";
  while (name) {
    const box = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
    if (box) {
      box.classList.add("invalid");
      const el = box.querySelector(".field-error");
      el.textContent = err.field === name ? err.message : `${err.field}: ${err.message}`;
      el.hidden = false;
      return;
    }
    name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
  }
  banner.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
  banner.hidden = false;
}

async function submitView() {
  show(h("h1", {}, "Submit a job"), h("p", { class: "muted" }, "Loading plugins…"));
  let plugins;
  try { plugins = (await api("GET", "/api/v1/plugins")).plugins.filter((p) => p.status === "active"); } catch (e) {
    show(h("h1", {}, "Submit a job"), h("div", { class: "banner error" }, e.message)); return;
  }
  const byType = new Map();
  for (const p of plugins) for (const t of p.jobTypes) byType.set(t, p);
  const types = [...byType.keys()].sort();
  const type = h("select", { name: "type" }, types.map((t) => h("option", { value: t }, t)));
  const path = h("input", { type: "text", name: "path", placeholder: "/content/dam/…" });
  const excluded = h("textarea", { name: "excludedPaths", rows: 2, placeholder: "one path per line" });
  const name = h("input", { type: "text", name: "name" });
  const description = h("input", { type: "text", name: "description" });
  const priority = h("input", { type: "text", inputmode: "numeric", name: "priority", value: "0" });
  const paramsBox = h("fieldset", { id: "params" });
  const banner = h("div", { class: "banner error", hidden: true, id: "submit-error" });
  let params = null;
  const renderParams = () => {
    const plugin = byType.get(type.value);
    params = paramsFields(plugin ? plugin.paramsSchema : null);
    paramsBox.replaceChildren(h("legend", {}, `Parameters${plugin ? ` (${plugin.name} ${plugin.version})` : ""}`), ...params.fields.flat());
  };
  type.addEventListener("change", renderParams);
  const button = h("button", { class: "primary", type: "submit", id: "submit-button" }, "Submit");
  const form = h("form", { class: "submit panel", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    banner.hidden = true;
    for (const box of form.querySelectorAll(".field.invalid")) box.classList.remove("invalid");
    for (const el of form.querySelectorAll(".field-error")) el.hidden = true;
    button.disabled = true;
    try {
      const pr = priority.value.trim();
      if (pr !== "" && !/^-?\d+$/.test(pr)) throw new ApiError(400, "priority", "must be an integer");
      const body = {
        type: type.value,
        path: path.value.trim(),
        excludedPaths: excluded.value.split("\n").map((s) => s.trim()).filter((s) => s),
        params: params.read(),
      };
      if (name.value.trim()) body.name = name.value.trim();
      if (description.value.trim()) body.description = description.value.trim();
      if (pr !== "") body.priority = Number(pr);
      await api("POST", "/api/v1/jobs", body);
      location.hash = "#/jobs";
    } catch (err) {
      showFieldError(form, banner, err);
    } finally { button.disabled = false; }
  } },
  fieldRow("type", "Job type", type, null, true),
  fieldRow("path", "Path", path, "The folder or asset the job works on.", true),
  fieldRow("excludedPaths", "Excluded paths", excluded, "Paths below the path to leave alone, one per line.", false),
  fieldRow("name", "Name", name, "Unique within your tenant.", false),
  fieldRow("description", "Description", description, null, false),
  fieldRow("priority", "Priority", priority, "Higher runs first.", false),
  paramsBox,
  h("div", { class: "form-actions" }, button, h("a", { href: "#/jobs" }, h("button", { type: "button" }, "Cancel"))));
  show(h("h1", {}, "Submit a job"), banner, form);
  renderParams();
}

// ---- start ----

document.getElementById("logout").addEventListener("click", () => signOut(null));
window.addEventListener("hashchange", route);
route();
