// gpumarket operator dashboard: reads the admin API with the admin token typed into the page
// (kept in this tab's session storage), refreshes every few seconds, and bans, unbans and rules
// on disputes through the same endpoints as `gpumarket admin`. Everything the API returns is
// written as text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "gpumarket-admin-token";
const REFRESH_MS = 5000;
let timer = null;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let reply;
  try {
    reply = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    throw new ApiError(0, "cannot reach the coordinator");
  }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new ApiError(reply.status, body.detail || `HTTP ${reply.status}`);
  return body;
}

function micros(value) {
  return (Number(value) / 1e6).toFixed(6);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (className) td.className = className;
  return td;
}

function button(label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
      await refresh();
    } catch (err) {
      showError(err.message);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function card(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const v = document.createElement("div");
  v.className = "value";
  v.textContent = value;
  const l = document.createElement("div");
  l.className = "label";
  l.textContent = label;
  div.append(v, l);
  return div;
}

function renderStats(s) {
  $("cards").replaceChildren(
    card("providers online", `${s.providers_online} of ${s.providers_total}`),
    card("banned providers", s.providers_banned),
    card("GPUs busy", `${s.gpus_busy} of ${s.gpus_online}`),
    card(`GPU utilization (${Math.round(s.window_seconds / 60)} min)`, `${(s.utilization * 100).toFixed(1)}%`),
    card("CPUs busy (CPU offers)", `${s.cpus_busy} of ${s.cpus_online}`),
    card(`CPU utilization (${Math.round(s.window_seconds / 60)} min)`, `${(s.cpu_utilization * 100).toFixed(1)}%`),
    card("revenue", micros(s.revenue_micros)),
    card("fees", micros(s.fees_micros)),
    card("pending", micros(s.pending_micros)),
  );
  const states = Object.entries(s.jobs_by_state)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${state} ${n}`);
  $("states").textContent = states.length ? `jobs: ${states.join(", ")}` : "no jobs yet";
}

function renderProviders(providers) {
  fill(
    "providers",
    providers.map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.id = p.id;
      if (p.banned) tr.className = "banned";
      const gpus = p.gpus.length ? `${p.gpus.length}x ${p.gpus[0].name}` : "CPU";
      const action = p.banned
        ? button("unban", () => api(`/v1/admin/providers/${p.id}/unban`, { method: "POST" }))
        : button("ban", async () => {
            const reason = window.prompt(`Why ban ${p.id}?`);
            if (!reason) return;
            await api(`/v1/admin/providers/${p.id}/ban`, { method: "POST", body: { reason } });
          });
      const actions = document.createElement("td");
      actions.append(action);
      tr.append(
        cell(p.id, "id"),
        cell(p.region),
        cell(p.online ? "yes" : "no"),
        cell(gpus),
        cell(p.active_jobs),
        cell(p.completed_jobs),
        cell(p.failed_jobs),
        cell(Number(p.reputation).toFixed(2)),
        cell(p.earned),
        cell(p.banned ? p.ban_reason || "yes" : "no"),
        actions,
      );
      return tr;
    }),
  );
}

async function renderDisputes(disputes) {
  $("no-disputes").hidden = disputes.length > 0;
  $("disputes").hidden = disputes.length === 0;
  const rows = await Promise.all(
    disputes.map(async (job) => {
      const events = await api(`/v1/jobs/${job.id}/events`);
      const challenged = events.filter((e) => e.to_state === "DISPUTED").pop();
      const tr = document.createElement("tr");
      tr.dataset.id = job.id;
      const ruling = document.createElement("td");
      const rule = (atFault) => () =>
        api(`/v1/admin/jobs/${job.id}/resolve`, {
          method: "POST",
          body: { provider_at_fault: atFault, note: "ruled on the dashboard" },
        });
      ruling.append(button("provider right", rule(false)), " ", button("provider at fault", rule(true)));
      tr.append(
        cell(job.id, "id"),
        cell(job.provider_id, "id"),
        cell(job.cost),
        cell(challenged ? challenged.reason : ""),
        ruling,
      );
      return tr;
    }),
  );
  fill("disputes", rows);
}

function renderJobs(page) {
  fill(
    "jobs",
    page.items.map((job) => {
      const tr = document.createElement("tr");
      tr.dataset.id = job.id;
      tr.append(
        cell(job.id, "id"),
        cell(job.state),
        cell(job.owner, "id"),
        cell(job.provider_id, "id"),
        cell(job.spec.image),
        cell(job.cost),
        cell(new Date(job.updated_at).toLocaleString()),
      );
      return tr;
    }),
  );
}

async function refresh() {
  try {
    const [stats, providers, disputes, jobs] = await Promise.all([
      api("/v1/admin/stats"),
      api("/v1/admin/providers"),
      api("/v1/admin/disputes"),
      api("/v1/admin/jobs?limit=20"),
    ]);
    renderStats(stats);
    renderProviders(providers);
    await renderDisputes(disputes);
    renderJobs(jobs);
    showError("");
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      signOut();
      showError(`the coordinator refused this token: ${err.message}`);
      return;
    }
    $("status").textContent = "not updated";
    showError(err.message);
  }
}

function signedIn() {
  $("sign-in").hidden = true;
  $("market").hidden = false;
  $("sign-out").hidden = false;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut() {
  clearInterval(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $("market").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("status").textContent = "signed out";
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    showError("");
    signedIn();
  });
  $("sign-out").addEventListener("click", signOut);
  if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
});
