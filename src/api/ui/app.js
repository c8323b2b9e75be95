// The support page: connections with their health, then per connection its event log and a daily
// usage chart. It only reads the JSON API, with the credentials the browser was given for /ui.

const EVENT_KINDS = [
  "connected",
  "token_replaced",
  "verified",
  "credential_invalid",
  "scope_denied",
  "rate_limited",
  "provider_error",
  "foreign_link_refused",
  "sync_started",
  "sync_completed",
  "sync_failed",
  "disconnected",
  "record_rejected",
];
const $ = (selector) => document.querySelector(selector);
const state = { connection: null, eventsCursor: null, chart: null };

async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const ago = (iso) => {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
};

async function loadConnections() {
  const { connections } = await api("/v1/connections");
  const rows = await Promise.all(connections.map((c) => api(`/v1/connections/${c.id}`)));
  const body = $("#connections tbody");
  body.replaceChildren(
    ...rows.map((c) => {
      const tr = el(
        "tr",
        { "data-id": c.id },
        el("td", {}, c.workspaceId),
        el("td", {}, c.accountUsername ? `${c.accountUsername} (${c.accountType})` : "—"),
        el("td", {}, el("span", { class: `state ${c.status}` }, c.status.replace("_", " "))),
        el("td", { title: c.lastSyncedAt ?? "" }, ago(c.lastSyncedAt)),
        el("td", {}, c.lastError ? `${c.lastError.kind}: ${c.lastError.message}` : "—"),
      );
      tr.addEventListener("click", () => selectConnection(c));
      return tr;
    }),
  );
  return rows;
}

async function selectConnection(c) {
  state.connection = c;
  for (const tr of document.querySelectorAll("#connections tbody tr")) tr.classList.toggle("selected", tr.dataset.id === c.id);
  $("#detail").hidden = false;
  $("#detail-title").textContent = `${c.workspaceId} · ${c.accountUsername ?? "unverified"}`;
  $("#detail-summary").textContent =
    `${c.status}; last successful sync ${ago(c.lastSyncedAt)}` +
    (c.currentRun ? `; run in progress: ${c.currentRun.pagesDone} pages, ${c.currentRun.predictionsSeen} predictions` : "") +
    (c.nextSyncAt ? `; next sync ${new Date(c.nextSyncAt).toLocaleString()}` : "");
  await Promise.all([loadEvents(true), loadUsage()]);
}

async function loadEvents(reset) {
  const kind = $("#events-form [name=kind]").value;
  const params = new URLSearchParams({ limit: "25" });
  if (kind) params.set("kind", kind);
  if (!reset && state.eventsCursor) params.set("cursor", state.eventsCursor);
  const { events, nextCursor } = await api(`/v1/connections/${state.connection.id}/events?${params}`);
  state.eventsCursor = nextCursor;
  const items = events.map((e) =>
    el(
      "li",
      { class: e.level, "data-kind": e.kind },
      el("time", { datetime: e.occurredAt }, new Date(e.occurredAt).toLocaleString()),
      el("span", { class: "kind" }, e.kind),
      ` ${e.message}`,
      e.retryAfterSeconds ? ` (retry after ${e.retryAfterSeconds}s)` : null,
    ),
  );
  if (reset) $("#events").replaceChildren(...items);
  else $("#events").append(...items);
  $("#more-events").hidden = !nextCursor;
}

const PALETTE = ["#4f6bed", "#e8833a", "#2f9e6a", "#c2417b", "#8a63d2", "#d4a72c", "#3aa7c9", "#7a8597"];

async function loadUsage() {
  const form = new FormData($("#usage-form"));
  const by = form.get("by");
  const params = new URLSearchParams({
    connectionId: state.connection.id,
    from: form.get("from"),
    to: form.get("to"),
    groupBy: `date,${by}`,
  });
  const { rows } = await api(`/v1/usage?${params}`);
  const dates = [...new Set(rows.map((r) => r.date))].sort();
  const series = [...new Set(rows.map((r) => r[by] || "(none)"))].sort();
  const datasets = series.map((name, i) => ({
    label: name,
    backgroundColor: PALETTE[i % PALETTE.length],
    data: dates.map((d) => rows.filter((r) => r.date === d && (r[by] || "(none)") === name).reduce((n, r) => n + r.predictions, 0)),
  }));
  $("#usage-empty").hidden = rows.length > 0;
  state.chart?.destroy();
  state.chart = new window.Chart($("#usage-chart"), {
    type: "bar",
    data: { labels: dates, datasets },
    options: {
      animation: false,
      responsive: true,
      scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "predictions" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
  $("#usage-chart").dataset.points = String(datasets.reduce((n, d) => n + d.data.filter((v) => v > 0).length, 0));
}

function init() {
  const kinds = $("#events-form [name=kind]");
  kinds.append(...EVENT_KINDS.map((k) => el("option", { value: k }, k)));
  kinds.addEventListener("change", () => loadEvents(true));
  $("#more-events").addEventListener("click", () => loadEvents(false));
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  $("#usage-form [name=from]").value = from.toISOString().slice(0, 10);
  $("#usage-form [name=to]").value = to.toISOString().slice(0, 10);
  $("#usage-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void loadUsage();
  });
  loadConnections()
    .then(() => document.body.setAttribute("data-ready", "true"))
    .catch((err) => document.body.prepend(el("p", { class: "error" }, `Could not load connections: ${err.message}`)));
}

// Chart.js loads with `defer`; module scripts run after deferred ones, so it is there.
init();
