// Orchestrator fleet dashboard. Static page; all data comes from GET /admin/v1/dashboard with a bearer token that
// has the read scope; rollout actions (pause, resume, abort, rollback, retry) need the operate scope, and the node
// refuses them otherwise. The token lives in this tab's sessionStorage only. It may be handed over once in the URL
// fragment (#token=...), which browsers never send to the server; the script moves it to sessionStorage and strips
// it from the address bar at once. EventSource cannot send an Authorization header, so the page polls.
"use strict";

const TOKEN_KEY = "orch-dashboard-token";
const POLL_MS = 2000;
let timer = null;
let lastOk = null;

function $(id) { return document.getElementById(id); }

// Builds an element; children are nodes or strings (strings become text nodes, never HTML: device-reported
// failure reasons are untrusted input).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows.map(r => el("tr", {}, r.map(c => el("td", {}, c))))));
}

function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showLogin(message) {
  if (timer) { clearTimeout(timer); timer = null; }
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status-line").textContent = "not connected";
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { showLogin(""); return; }
  try {
    const res = await fetch("/admin/v1/dashboard?rolloutPage=" + rolloutPage, { headers: { "Authorization": "Bearer " + token }, cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      let msg = "The token was refused.";
      try { msg = (await res.json()).message; } catch (_) { }
      showLogin(msg);
      return;
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    const data = await res.json();
    render(data);
    await refreshReleases();
    lastOk = new Date();
    $("status-line").className = "";
    $("status-line").textContent = "live from " + data.cluster.selfAddress + " - updated " + lastOk.toLocaleTimeString();
  } catch (err) {
    $("status-line").className = "stale";
    $("status-line").textContent = "update failed (" + err.message + ")" + (lastOk ? "; showing data from " + lastOk.toLocaleTimeString() : "");
  }
  timer = setTimeout(poll, POLL_MS);
}

function render(d) {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  renderRollouts(d.rollouts, d.rolloutsAvailable);
  renderRolloutPager(d.rolloutsTotal || 0, d.rolloutsPage || 0, d.rolloutsPageSize || 10);
  renderChannels(d.channels || []);
  renderStates(d.fleet);
  renderVersions(d.fleet);
  renderFailures(d.fleet);
  renderChanges(d.changes || []);
  renderCluster(d.cluster);
}

// Which actions a rollout in a status can take; the node still decides (409 with its reason otherwise).
const ACTIONS = {
  Created: ["pause", "abort"],
  Running: ["pause", "abort", "rollback"],
  Paused: ["resume", "abort", "rollback"],
  Completed: ["rollback"],
  Aborted: ["retry-failed", "rollback"],
  RolledBack: [],
};
let pending = null;

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, {
    method, cache: "no-store",
    headers: Object.assign({ "Authorization": "Bearer " + token }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch (_) { }
  if (!res.ok) {
    const scope = res.status === 403 ? " (this token lacks the operate scope)" : "";
    throw new Error((data && data.message ? data.message : "HTTP " + res.status) + scope);
  }
  return data;
}

function askAction(rolloutId, action) {
  pending = { rolloutId, action };
  $("action-what").textContent = `${action} ${rolloutId}:`;
  $("action-reason").value = "";
  $("action-form").hidden = false;
  $("action-reason").focus();
}

async function runAction() {
  if (!pending) return;
  const { rolloutId, action } = pending;
  const reason = $("action-reason").value.trim();
  pending = null;
  $("action-form").hidden = true;
  const result = $("action-result");
  try {
    const r = await api("POST", `/admin/v1/rollouts/${encodeURIComponent(rolloutId)}/${action}`, reason ? { reason } : {});
    result.className = "";
    result.textContent = `${action} ${rolloutId}: done, now ${r && r.status ? r.status : "updated"}`;
  } catch (err) {
    result.className = "error";
    result.textContent = `${action} ${rolloutId} refused: ${err.message}`;
  }
  if (timer) { clearTimeout(timer); timer = null; }
  poll();
}

function list(id) {
  const v = $(id).value.trim();
  return v ? v.split(",").map(x => x.trim()).filter(x => x) : null;
}

// "k=v,k2=v2" as an object; a part without "=" is kept with an empty value so the node names it in its error.
function pairs(id) {
  const items = list(id);
  if (!items) return null;
  const out = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    out[eq < 0 ? item : item.slice(0, eq).trim()] = eq < 0 ? "" : item.slice(eq + 1).trim();
  }
  return out;
}

// The same request for the preview and the creation, so what is previewed is what gets created.
function createRequest() {
  const waves = list("c-waves");
  const body = {
    product: $("c-product").value.trim(), version: $("c-version").value.trim(),
    selector: { tags: list("c-tags"), deviceIds: list("c-devices"), groups: list("c-groups"), attributes: pairs("c-attributes") },
  };
  if (waves) body.waves = waves.map(w => w.endsWith("%") ? { percent: Number(w.slice(0, -1)) } : { count: Number(w) });
  if ($("c-error").value.trim()) body.errorThreshold = Number($("c-error").value.trim());
  if ($("c-channel").value.trim()) body.channel = $("c-channel").value.trim();
  return body;
}

let previewTimer = null;
function schedulePreview() {
  if (previewTimer) clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 300);
}

async function preview() {
  const out = $("c-preview");
  const body = createRequest();
  const sel = body.selector;
  if (!body.product || !body.version || (!sel.tags && !sel.deviceIds && !sel.groups && !sel.attributes)) return;
  try {
    const p = await api("POST", "/admin/v1/rollouts/preview", body);
    const running = p.installed.map(i => (i.versionId === null ? "not checked in" : "version ID " + i.versionId) + ": " + i.devices).join(", ");
    out.className = "";
    out.textContent = `selects ${p.devices} device(s) of channel ${p.channel} for ${p.product} ${p.version}; waves ${p.waveSizes.join(", ")}` +
      (running ? `; running ${running}` : "") + (p.sample.length ? ` (${p.sample.join(", ")}${p.devices > p.sample.length ? ", ..." : ""})` : "");
  } catch (err) {
    out.className = "error";
    out.textContent = err.message;
  }
}

async function createRollout() {
  const out = $("c-preview");
  try {
    const r = await api("POST", "/admin/v1/rollouts", createRequest());
    out.className = "";
    out.textContent = `created rollout ${r.spec.rolloutId} (${r.status})`;
  } catch (err) {
    out.className = "error";
    out.textContent = "not created: " + err.message;
  }
  if (timer) { clearTimeout(timer); timer = null; }
  poll();
}

// "status=Failed tag=eu site=berlin": status and tag are the registry's own filters, every other key=value an attribute.
function searchQuery(text) {
  const q = new URLSearchParams();
  for (const term of text.split(/\s+/).filter(t => t)) {
    const eq = term.indexOf("=");
    if (eq <= 0) throw new Error(`"${term}" is not key=value (e.g. status=Failed, tag=eu, site=berlin)`);
    const key = term.slice(0, eq), value = term.slice(eq + 1);
    if (key === "status" || key === "tag" || key === "rollout") q.append(key, value);
    else q.append("attribute", key + "=" + value);
  }
  q.append("limit", "50");
  return q.toString();
}

async function searchDevices(text) {
  const box = $("search");
  try {
    const list = await api("GET", "/admin/v1/devices?" + searchQuery(text));
    const rows = list.devices.map(d => {
      const link = el("a", { href: "#", "data-device-link": d.deviceId }, d.deviceId);
      link.addEventListener("click", e => { e.preventDefault(); showDevice(d.deviceId); });
      return [link, el("span", { class: "badge " + d.status }, d.status), d.product || "-", String(d.installedVersionId),
        Object.entries(d.attributes || {}).map(([k, v]) => k + "=" + v).join(", ") || "-"];
    });
    box.replaceChildren(el("p", { class: "muted", "data-testid": "search-count" }, `${list.devices.length} of ${list.total} matching device(s)`),
      rows.length ? table(["device", "status", "product", "installed version ID", "attributes"], rows) : null);
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, "search: " + err.message));
  }
}

async function showDevice(id) {
  const box = $("device");
  box.replaceChildren(el("p", { class: "muted" }, "loading " + id + " ..."));
  try {
    const enc = encodeURIComponent(id);
    const [state, history] = await Promise.all([api("GET", "/admin/v1/devices/" + enc), api("GET", "/admin/v1/devices/" + enc + "/history?last=25")]);
    const target = state.target ? `${state.target.product} ${state.target.version} (version ID ${state.target.versionId})` : "-";
    box.replaceChildren(
      el("h3", { "data-device": state.deviceId }, state.deviceId + "  ", el("span", { class: "badge " + state.status }, state.status)),
      table(["product", "installed version ID", "target", "last seen", "failed attempts", "last failure", "attributes"],
        [[state.product || "-", String(state.installedVersionId), target, state.lastSeen ? new Date(state.lastSeen).toLocaleString() : "never",
          String(state.failedAttempts || 0), state.lastFailure ? state.lastFailure.reason : "-",
          Object.entries(state.attributes || {}).map(([k, v]) => k + "=" + v).join(", ") || "-"]]),
      table(["#", "at", "what happened"], history.events.slice().reverse().map(e => [String(e.sequenceNr), new Date(e.at).toLocaleString(), e.summary])));
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, `device ${id}: ${err.message}`));
  }
}

function waveBar(w) {
  const pct = n => (w.total > 0 ? (100 * n / w.total) : 0).toFixed(2) + "%";
  return el("div", { class: "bar", title: `${w.succeeded} succeeded, ${w.inProgress} in progress (${w.failing || 0} failing, still retrying), ${w.failed} failed, ${w.pending} pending` },
    el("span", { class: "ok", style: "width:" + pct(w.succeeded) }),
    el("span", { class: "run", style: "width:" + pct(w.inProgress) }),
    el("span", { class: "bad", style: "width:" + pct(w.failed) }));
}

// Unfinished rollouts come first, then the most recently changed; older ones are a page away, never dropped.
let rolloutPage = 0;

function renderRolloutPager(total, page, size) {
  const box = $("rollout-pager");
  const pages = Math.max(1, Math.ceil(total / size));
  if (page >= pages && page > 0) { rolloutPage = pages - 1; return; } // rollouts went away: the next poll shows the last page
  if (total <= size) { box.replaceChildren(); return; }
  const turn = to => () => { rolloutPage = to; if (timer) { clearTimeout(timer); timer = null; } poll(); };
  const newer = el("button", { type: "button", "data-testid": "rollouts-newer" }, "newer");
  const older = el("button", { type: "button", "data-testid": "rollouts-older" }, "older");
  newer.disabled = page === 0;
  older.disabled = page >= pages - 1;
  newer.addEventListener("click", turn(page - 1));
  older.addEventListener("click", turn(page + 1));
  box.replaceChildren(newer, el("span", { class: "muted", "data-testid": "rollouts-range" },
    ` rollouts ${page * size + 1}-${Math.min(total, (page + 1) * size)} of ${total} `), older);
}

function renderRollouts(rollouts, available) {
  const box = $("rollouts");
  box.replaceChildren();
  if (!available) { box.append(el("p", { class: "muted" }, "rollouts are not served by this node")); return; }
  if (!rollouts.length) { box.append(el("p", { class: "muted" }, "no rollouts")); return; }
  for (const r of rollouts) {
    const done = r.waves.reduce((a, w) => a + w.succeeded, 0), total = r.waves.reduce((a, w) => a + w.total, 0);
    box.append(el("div", { class: "rollout", "data-rollout": r.rolloutId },
      el("h3", {}, r.rolloutId + "  ", el("span", { class: "badge " + r.status }, r.status), "  ",
        el("span", { class: "muted" }, r.rollback
          ? `${r.product} ${r.version} rolled back - ${r.rollback.restored}/${r.rollback.total} devices back on their previous version, ${r.rollback.inProgress} in progress, ${r.rollback.failed} failed`
          : `${r.product} ${r.version} - wave ${r.currentWave} of ${r.waves.length} - ${done}/${total} devices done`)),
      r.pauseReason ? el("p", { class: "error" }, "reason: " + r.pauseReason) : null,
      table(["wave", "progress", "total", "done", "running", "failing", "failed", "pending"],
        r.waves.map(w => [String(w.wave), waveBar(w), w.total, w.succeeded, w.inProgress, w.failing || 0, w.failed, w.pending])),
      r.failures.length ? table(["failed or failing device", "wave", "reason"],
        r.failures.slice(0, 10).map(f => [f.deviceId + (f.failing ? " (failing, retrying)" : ""), f.wave, f.reason])) : null,
      el("div", { class: "actions" }, (ACTIONS[r.status] || []).map(a =>
        el("button", { type: "button", "data-action": a, "data-rollout-id": r.rolloutId }, a === "retry-failed" ? "retry failed" : a)))));
  }
}

// The published releases change rarely and come from the store's indexes, so they are read less often than the board.
const RELEASES_EVERY_MS = 10000;
let releasesAt = 0;

async function refreshReleases() {
  if (Date.now() - releasesAt < RELEASES_EVERY_MS) return;
  releasesAt = Date.now();
  try {
    const view = await api("GET", "/admin/v1/releases");
    const rows = view.products.flatMap(p => p.versions.slice().reverse().map(v =>
      [p.product, v.version, String(v.versionId), new Date(v.createdUtc).toLocaleString(), v.channels.length ? v.channels.join(", ") : "-"]));
    $("releases").replaceChildren(rows.length
      ? table(["product", "version", "version ID", "published", "channels"], rows)
      : el("p", { class: "muted" }, "no releases published"));
  } catch (err) {
    $("releases").replaceChildren(el("p", { class: "error" }, "releases: " + err.message));
  }
}

function renderChannels(channels) {
  const release = r => r ? `${r.version} (id ${r.versionId})` : "none";
  $("channels").replaceChildren(channels.length
    ? table(["product", "channel", "current release", "rollouts moving it", "last change"],
        channels.map(c => [c.product, c.channel, release(c.current),
          c.rollouts.length ? c.rollouts.map(h => `${h.rolloutId} -> ${h.target.version}`).join(", ") : "-",
          c.history.length ? c.history[c.history.length - 1].cause : "-"]))
    : el("p", { class: "muted" }, "no channels"));
}

function renderStates(f) {
  $("device-total").textContent = "(" + f.totalDevices + " devices)";
  const box = $("states");
  box.replaceChildren();
  for (const [status, n] of Object.entries(f.byStatus)) {
    box.append(el("div", { class: "card " + status + (n === 0 ? " zero" : ""), "data-status": status },
      el("div", { class: "n" }, n), el("div", { class: "label" }, status)));
  }
}

function renderVersions(f) {
  const box = $("versions");
  box.replaceChildren();
  if (!f.versions.length) { box.append(el("p", { class: "muted" }, "no devices yet")); return; }
  const max = Math.max(...f.versions.map(v => v.devices));
  for (const v of f.versions) {
    const label = (v.product || "(no product)") + " " + (v.version || (v.versionId === 0 ? "nothing installed" : "id " + v.versionId));
    box.append(el("div", { class: "share", "data-version": label },
      el("span", {}, label), el("div", {}, el("div", { class: "fill", style: "width:" + (100 * v.devices / max).toFixed(1) + "%" })),
      el("span", {}, v.devices)));
  }
}

function renderFailures(f) {
  const reasons = Object.entries(f.failureReasons);
  $("reasons").replaceChildren(reasons.length
    ? table(["reason", "devices"], reasons.map(([r, n]) => [r, n]))
    : el("p", { class: "muted" }, "no failures"));
  $("failures").replaceChildren(f.recentFailures.length
    ? table(["device", "stage", "reason", "attempts", "at"],
        f.recentFailures.map(x => [x.deviceId, x.stage, x.reason, x.attempt, new Date(x.at).toLocaleString()]))
    : el("p", { class: "muted" }, "no failures"));
}

function renderChanges(changes) {
  $("changes").replaceChildren(changes.length
    ? table(["at", "token", "action", "target", "reason", "status"],
        changes.map(c => [new Date(c.timeUtc).toLocaleString(), c.token, c.action, c.target || "-", c.reason || "-", String(c.status)]))
    : el("p", { class: "muted" }, "no changes recorded"));
}

function renderCluster(c) {
  $("cluster").replaceChildren(table(["address", "status", "roles", "reachable", ""],
    c.members.map(m => [m.address, m.status, m.roles.join(", "), m.reachable ? "yes" : "NO", (m.isLeader ? "leader " : "") + (m.isSelf ? "(this node)" : "")])));
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  $("login-form").addEventListener("submit", e => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    poll();
  });
  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin("Token forgotten."); });
  $("rollouts").addEventListener("click", e => {
    const b = e.target.closest("button[data-action]");
    if (b) askAction(b.getAttribute("data-rollout-id"), b.getAttribute("data-action"));
  });
  $("action-form").addEventListener("submit", e => { e.preventDefault(); runAction(); });
  $("action-cancel").addEventListener("click", () => { pending = null; $("action-form").hidden = true; });
  $("device-form").addEventListener("submit", e => { e.preventDefault(); showDevice($("device-input").value.trim()); });
  $("search-form").addEventListener("submit", e => { e.preventDefault(); searchDevices($("search-input").value.trim()); });
  $("create-form").addEventListener("input", schedulePreview);
  $("create-form").addEventListener("submit", e => { e.preventDefault(); createRollout(); });
  poll();
});
