// The support page: connections with their health (one request per page of the list), then per
// connection its health, coverage-aware daily usage and event log. It only reads the JSON API, with
// the credentials the browser was given for /ui. Every time shown is UTC and says so.

const STATES = ["verifying", "backfilling", "healthy", "throttled", "action_required", "failing", "disconnected"];
const EVENT_KINDS = [
  "connected",
  "token_replaced",
  "verified",
  "credential_invalid",
  "scope_denied",
  "token_unreadable",
  "token_readable",
  "duplicate_account",
  "account_changed",
  "history_moved",
  "rate_limited",
  "provider_error",
  "foreign_link_refused",
  "sync_started",
  "sync_completed",
  "sync_failed",
  "disconnected",
  "record_rejected",
  "webhook_delivered",
  "webhook_failed",
  "enrichment_failed",
  "enrichment_recovered",
  "history_erased",
];
// Status colours mean what they say; every other series gets a colour from its name, the same for every customer.
const STATUS_COLOURS = {
  succeeded: "#1a7f37",
  failed: "#cf222e",
  canceled: "#6e7781",
  aborted: "#bc4c00",
  in_progress: "#0969da",
  other: "#8250df",
};
const NOT_SYNCED = "rgba(110, 119, 129, 0.25)";
const REFRESH_MS = 30_000;
const DAY = 86_400_000;

const $ = (selector) => document.querySelector(selector);
const state = { pageCursor: null, nextCursor: null, detailId: null, eventsCursor: null, chart: null, usageRequest: 0 };

/** GET a JSON API path; a failed request throws with the API's own message. */
async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const detail = body?.issues?.length ? ` (${body.issues.join("; ")})` : "";
    throw new Error(body?.message ? `${body.message}${detail}` : `HTTP ${res.status} from ${path}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const utc = (iso, seconds = false) => (iso ? `${iso.slice(0, seconds ? 19 : 16).replace("T", " ")} UTC` : "never");
const utcTime = (iso) => el("time", { datetime: iso }, utc(iso, true));
const stateLabel = (s) => s.replace("_", " ");
const badge = (s) => el("span", { class: `state ${s}` }, stateLabel(s));
const number = (n, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });
const MEASURES = {
  predictions: { unit: "predictions", value: (r) => r.predictions, digits: 0 },
  computeSeconds: { unit: "compute seconds", value: (r) => r.computeSeconds ?? 0, digits: 3 },
  estimatedCostUsd: { unit: "estimated cost (USD)", value: (r) => Number(r.estimatedCostUsd ?? 0), digits: 4 },
};
const BASES = { hardwareCostUsd: "hardware seconds", tokenCostUsd: "tokens", outputCostUsd: "outputs" };

/** Sums the API's decimal strings exactly (BigInt at the widest scale): money is never added as floats. */
function sumDecimal(values) {
  const parts = values.filter((v) => v !== null && v !== undefined).map((v) => String(v).split("."));
  const scale = Math.max(0, ...parts.map(([, f = ""]) => f.length));
  const units = parts.reduce((n, [i, f = ""]) => n + BigInt(i + f.padEnd(scale, "0")), 0n);
  const digits = units.toString().padStart(scale + 1, "0");
  return scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
}
// Rounded for reading only; small amounts keep enough digits not to show as $0.00.
const dollars = (dec) => `$${number(Number(dec), Number(dec) < 1 ? 4 : 2)}`;

function showError(selector, err) {
  const node = $(selector);
  node.textContent = err ? String(err.message ?? err) : "";
  node.hidden = !err;
}

// ---- the list ----

function listParams() {
  const form = new FormData($("#filters"));
  const params = new URLSearchParams({ limit: "50" });
  for (const name of ["state", "workspaceId", "q"]) {
    const value = String(form.get(name) ?? "").trim();
    if (value) params.set(name, value);
  }
  if (state.pageCursor) params.set("cursor", state.pageCursor);
  return params;
}

function connectionRow(c) {
  const tr = el(
    "tr",
    { "data-id": c.id, "data-state": c.health.state, tabindex: "0", "aria-label": `${c.workspaceId}, ${stateLabel(c.health.state)}: open` },
    el("td", {}, c.workspaceId),
    el("td", { class: "wide" }, c.accountUsername ? `${c.accountUsername} (${c.accountType})` : "not verified"),
    el("td", {}, badge(c.health.state)),
    el("td", {}, c.health.message, ...c.health.warnings.map((w) => el("div", { class: "warning" }, `Warning: ${w.message}`))),
    el("td", { class: "wide" }, utc(c.lastSyncedAt)),
  );
  tr.classList.toggle("selected", c.id === state.detailId);
  const open = () => (location.hash = `#/connections/${c.id}`);
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      open();
    }
  });
  return tr;
}

async function loadList() {
  $("#connections-panel").setAttribute("aria-busy", "true");
  try {
    const { connections, nextCursor } = await api(`/v1/connections?${listParams()}`);
    state.nextCursor = nextCursor;
    $("#connections tbody").replaceChildren(...connections.map(connectionRow));
    $("#next-page").hidden = !nextCursor;
    $("#first-page").hidden = !state.pageCursor;
    const shown = connections.length ? `${connections.length} connections shown` : "No connections match these filters";
    $("#list-status").textContent = `${shown}; updated ${utc(new Date().toISOString(), true)}.`;
    showError("#list-error", null);
  } catch (err) {
    showError("#list-error", new Error(`Could not load connections: ${err.message}`));
  } finally {
    $("#connections-panel").removeAttribute("aria-busy");
  }
}

// ---- one connection ----

function renderHealth(c) {
  const h = c.health;
  $("#detail-title").textContent = `${c.workspaceId} · ${c.accountUsername ?? "account not verified"}`;
  $("#detail-link").href = `#/connections/${c.id}`;
  $("#detail-link").textContent = `${location.origin}/ui/#/connections/${c.id}`;
  $("#health-state").replaceWith(Object.assign(badge(h.state), { id: "health-state" }));
  $("#health-since").textContent = `since ${utc(h.since)}${h.until ? `; retrying at ${utc(h.until)}` : ""}`;
  $("#health-message").textContent = h.message;
  $("#health-action").hidden = !h.action;
  $("#health-action").replaceChildren(
    el("strong", {}, h.actionBy === "operator" ? "Ask an operator: " : "Tell the customer: "),
    h.action ?? "",
  );
  $("#health-error").hidden = !h.lastError;
  if (h.lastError) {
    const status = h.lastError.httpStatus ? `, status ${h.lastError.httpStatus}` : "";
    $("#health-error").replaceChildren(
      el("strong", {}, "Current error: "),
      `${h.lastError.message} (${h.lastError.kind}${status}, `,
      utcTime(h.lastError.at),
      ")",
    );
  }
  $("#health-warnings").replaceChildren(
    ...h.warnings.map((w) =>
      el("li", { class: "warning", "data-kind": w.kind }, el("strong", {}, "Warning: "), `${w.message} (since `, utcTime(w.since), ")"),
    ),
  );
  $("#health-progress-wrap").hidden = h.progress === undefined;
  $("#health-progress").value = h.progress ?? 0;
  $("#health-progress-text").textContent = h.progress === undefined ? "" : `${Math.round(h.progress * 100)} % of the window read`;
  const facts = [
    ["Connection id", c.id],
    ["Created", utc(c.createdAt)],
    ["Token verified", utc(c.verifiedAt)],
    ["Last successful sync", utc(c.lastSyncedAt)],
    ["Next scheduled sync", c.nextSyncAt ? utc(c.nextSyncAt) : "none"],
  ];
  $("#health-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function loadEvents(reset) {
  const kind = $("#events-form [name=kind]").value;
  const params = new URLSearchParams({ limit: "25" });
  if (kind) params.set("kind", kind);
  if (!reset && state.eventsCursor) params.set("cursor", state.eventsCursor);
  const { events, nextCursor } = await api(`/v1/connections/${state.detailId}/events?${params}`);
  state.eventsCursor = nextCursor;
  const items = events.map((e) =>
    el("li", { class: e.level, "data-kind": e.kind }, utcTime(e.occurredAt), " ", el("span", { class: "kind" }, e.kind), ` ${e.message}`),
  );
  if (reset) $("#events").replaceChildren(...items);
  else $("#events").append(...items);
  $("#more-events").hidden = !nextCursor;
}

async function refreshDetail(focus) {
  const id = state.detailId;
  try {
    const c = await api(`/v1/connections/${id}`);
    if (id !== state.detailId) return;
    renderHealth(c);
    showError("#detail-error", null);
    $("#detail").hidden = false;
    if (focus) $("#detail-title").focus();
    await loadEvents(true);
  } catch (err) {
    showError("#detail-error", new Error(`Could not load connection ${id}: ${err.message}`));
    $("#detail").hidden = false;
  }
}

// ---- usage ----

/** A colour from the name (FNV-1a), the same on every page and for every customer. */
function seriesColour(name, by) {
  if (by === "status" && STATUS_COLOURS[name]) return STATUS_COLOURS[name];
  let h = 0x811c9dc5;
  for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return `hsl(${h % 360}, 65%, ${38 + ((h >>> 9) % 12)}%)`;
}

function daysBetween(from, to) {
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`) && days.length < 1000; t += DAY) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

function clearUsage() {
  state.chart?.destroy();
  state.chart = null;
  $("#chart-box").hidden = true;
  $("#usage-chart").dataset.points = "0";
  $("#usage-table").replaceChildren();
  $("#usage-totals").replaceChildren();
  $("#usage-empty").hidden = true;
  $("#usage-cost-note").hidden = true;
  $("#coverage-warning").hidden = true;
}

function coverageText(cov, from, to) {
  if (!cov) return null;
  if (!cov.from)
    return "Nothing in this range has been read from Replicate yet (it is before the backfill window, or the backfill has not reached it).";
  const synced = `Days read: ${cov.from} to ${cov.to}`;
  if (!cov.complete) return `Backfill incomplete. ${synced}; the grey days are not synced yet, so totals are partial.`;
  if (cov.to < to || cov.from > from) return `${synced}; later days fill in on the next syncs (last sync ${utc(cov.lastSyncedAt)}).`;
  return null;
}

async function loadUsage() {
  const request = ++state.usageRequest;
  const form = new FormData($("#usage-form"));
  const [from, to, by, measure] = ["from", "to", "by", "measure"].map((k) => String(form.get(k)));
  const base = { connectionId: state.detailId, from, to };
  document.body.dataset.usage = "loading";
  $("#usage-status").textContent = "Loading usage…";
  showError("#usage-error", null);
  try {
    if (by === "status" && measure !== "predictions")
      throw new Error(
        `${measure === "computeSeconds" ? "Compute seconds are" : "Estimated cost is"} not recorded per status: chart it by model or deployment.`,
      );
    const [detail, totals] = await Promise.all([
      api(`/v1/usage?${new URLSearchParams({ ...base, groupBy: `date,${by}` })}`),
      api(`/v1/usage?${new URLSearchParams({ ...base, groupBy: "date", fillZeros: "true" })}`),
    ]);
    if (request !== state.usageRequest) return;
    clearUsage();
    drawUsage(detail.rows, totals, { from, to, by, measure });
    $("#usage-status").textContent = `Usage from ${from} to ${to} (UTC days), by ${by}.`;
    document.body.dataset.usage = "ready";
  } catch (err) {
    if (request !== state.usageRequest) return;
    clearUsage();
    $("#usage-status").textContent = "";
    showError("#usage-error", new Error(`Could not load usage: ${err.message}`));
    document.body.dataset.usage = "error";
  }
}

function drawUsage(rows, totals, { from, to, by, measure }) {
  const cov = totals.coverage[0];
  const synced = (d) => Boolean(cov?.from) && d >= cov.from && d <= cov.to;
  const days = daysBetween(from, to);
  const { unit, value, digits } = MEASURES[measure];
  const names = [...new Set(rows.map((r) => r[by] || "(none)"))].sort();
  const cell = new Map();
  for (const r of rows) {
    const key = `${r.date}|${r[by] || "(none)"}`;
    cell.set(key, (cell.get(key) ?? 0) + value(r));
  }
  const series = names.map((name) => ({ name, data: days.map((d) => (synced(d) ? (cell.get(`${d}|${name}`) ?? 0) : null)) }));

  renderTotals(totals, from, to);
  const warning = coverageText(cov, from, to);
  $("#coverage-warning").hidden = !warning;
  $("#coverage-warning").textContent = warning ?? "";

  const points = series.reduce((n, s) => n + s.data.filter((v) => v > 0).length, 0);
  $("#usage-chart").dataset.points = String(points);
  if (points === 0) {
    $("#usage-empty").hidden = false;
    $("#usage-empty").textContent = days.some(synced)
      ? `No usage in this range: every day read has 0 ${unit}.`
      : "No usage shown: this range has not been synced yet.";
  } else {
    $("#chart-box").hidden = false;
    state.chart = new window.Chart($("#usage-chart"), {
      type: "bar",
      data: {
        labels: days,
        datasets: [
          ...series.map((s) => ({ label: s.name, data: s.data, backgroundColor: seriesColour(s.name, by), stack: "usage" })),
          // A full-height grey band behind the days not read yet, so they never look like zero.
          {
            label: "not synced yet",
            data: days.map((d) => (synced(d) ? null : 1)),
            backgroundColor: NOT_SYNCED,
            yAxisID: "ns",
            stack: "ns",
            grouped: false,
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, title: { display: true, text: "day (UTC)" } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: unit } },
          ns: { display: false, min: 0, max: 1 },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }
  const dailyCost = new Map(totals.rows.map((r) => [r.date, r.estimatedCostUsd ?? "0"]));
  renderUsageTable(days, series, synced, { unit, digits, dailyCost: measure === "estimatedCostUsd" ? null : dailyCost });
}

/** Totals for the range: counts, seconds, the estimated cost with its basis, and the idle floor as its own line. */
function renderTotals(totals, from, to) {
  const sum = (key) => totals.rows.reduce((n, r) => n + (r[key] ?? 0), 0);
  const predictions = sum("predictions");
  const lines = [`Total ${from} to ${to} (UTC): ${number(predictions)} predictions, ${number(sum("computeSeconds"), 1)} compute seconds.`];
  const cost = sumDecimal(totals.rows.map((r) => r.estimatedCostUsd));
  const bases = Object.entries(BASES)
    .filter(([key]) => Number(sumDecimal(totals.rows.map((r) => r[key]))) > 0)
    .map(([, label]) => label);
  const unpriced = predictions ? Math.round((1 - sum("pricedPredictions") / predictions) * 100) : 0;
  // Nothing priced is not "$0": say there is no estimate rather than a misleading zero.
  const noPrice = predictions > 0 && !sum("pricedPredictions");
  lines.push(
    noPrice
      ? "Estimated cost (an estimate, not an invoice): no estimate; 100 % of predictions unpriced (no price in the price book for these models)."
      : `Estimated cost (an estimate, not an invoice): ≈ ${dollars(cost)} estimated` +
          `${bases.length ? ` (${bases.join(", ")})` : ""}${unpriced ? `; ${unpriced} % of predictions unpriced` : ""}.`,
  );
  if (totals.idleFloor.length) {
    const floor = sumDecimal(totals.idleFloor.map((r) => r.estimatedCostUsd));
    const hours = totals.idleFloor.reduce((n, r) => n + r.instanceSeconds, 0) / 3600;
    lines.push(
      `Idle floor of dedicated deployments (minimum instances, billed while idle; not in the total above): ≈ ${dollars(floor)} estimated for ${number(hours, 1)} instance-hours.`,
    );
  }
  $("#usage-totals").replaceChildren(...lines.map((line, i) => el("p", { "data-line": ["usage", "cost", "idle-floor"][i] }, line)));
  $("#usage-cost-note").textContent = `About these estimates: ${totals.costNote}`;
  $("#usage-cost-note").hidden = false;
}

function renderUsageTable(days, series, synced, { unit, digits, dailyCost }) {
  const head = el(
    "tr",
    {},
    el("th", { scope: "col" }, "Day (UTC)"),
    ...series.map((s) => el("th", { scope: "col" }, s.name)),
    el("th", { scope: "col" }, `Total ${unit}`),
    dailyCost && el("th", { scope: "col" }, "Estimated cost (USD, an estimate)"),
  );
  const body = days.map((d, i) => {
    const known = synced(d);
    const total = series.reduce((n, s) => n + (s.data[i] ?? 0), 0);
    const cost = dailyCost ? [known ? number(Number(dailyCost.get(d) ?? 0), 4) : "—"] : [];
    const cells = known
      ? [...series.map((s) => number(s.data[i] ?? 0, digits)), number(total, digits), ...cost]
      : [...series.map(() => "—"), "not synced yet", ...cost];
    return el("tr", { class: known ? "" : "not-synced" }, el("th", { scope: "row" }, d), ...cells.map((c) => el("td", {}, c)));
  });
  $("#usage-table").replaceChildren(
    el("caption", {}, `Daily ${unit}; "not synced yet" days have not been read from Replicate.`),
    el("thead", {}, head),
    el("tbody", {}, ...body),
  );
}

// ---- routing and start-up ----

async function route() {
  const match = /^#\/connections\/([0-9a-f-]{36})$/.exec(location.hash);
  state.detailId = match ? match[1] : null;
  for (const tr of document.querySelectorAll("#connections tbody tr")) tr.classList.toggle("selected", tr.dataset.id === state.detailId);
  if (!state.detailId) {
    $("#detail").hidden = true;
    return;
  }
  document.body.dataset.usage = "loading";
  await refreshDetail(true);
  await loadUsage();
}

function init() {
  $("#filters [name=state]").append(...STATES.map((s) => el("option", { value: s }, stateLabel(s))));
  const kinds = $("#events-form [name=kind]");
  kinds.append(...EVENT_KINDS.map((k) => el("option", { value: k }, k)));
  kinds.addEventListener("change", () => loadEvents(true));
  $("#more-events").addEventListener("click", () => loadEvents(false));
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.pageCursor = null;
    void loadList();
  });
  $("#next-page").addEventListener("click", () => {
    state.pageCursor = state.nextCursor;
    void loadList();
  });
  $("#first-page").addEventListener("click", () => {
    state.pageCursor = null;
    void loadList();
  });
  const today = new Date();
  $("#usage-form [name=from]").value = new Date(today.getTime() - 29 * DAY).toISOString().slice(0, 10);
  $("#usage-form [name=to]").value = today.toISOString().slice(0, 10);
  $("#usage-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void loadUsage();
  });
  window.addEventListener("hashchange", () => void route());
  setInterval(() => {
    if (!$("#filters [name=autoRefresh]").checked || document.hidden) return;
    void loadList();
    if (state.detailId) void refreshDetail(false);
  }, REFRESH_MS);
  Promise.all([loadList(), route()]).then(() => document.body.setAttribute("data-ready", "true"));
}

// Chart.js loads with `defer`; module scripts run after deferred ones, so it is there.
init();
