// The dashboard's behaviour: read the collector's JSON API, build the tables, refresh every 30 s.
//
// Every value from the API came from volunteers' probes and is untrusted: it only ever becomes
// text (Node.append / textContent) or a property, never markup. The page's Content-Security-Policy
// requires Trusted Types with no policy, so any innerHTML here would throw, not render.
"use strict";

(() => {
  const REFRESH_MS = 30_000;
  const LATEST = 50;
  const PAGE_LIMIT = 1000;
  const MAX_PAGES = 5;
  // The measurements API pages oldest first: look back over widening windows until one holds
  // the latest 50 (null: from the beginning), so that a big database is not read whole.
  const WINDOWS_MINUTES = [5, 60, 24 * 60, 7 * 24 * 60, 31 * 24 * 60, null];
  const STATUSES = new Set(["ok", "blocked", "down", "inconclusive"]);

  const state = {
    flags: null,
    collateral: null,
    measurements: null,
    loadedAt: {},
    // the filters, kept in the page's address (?network=...&category=...) so a view can be shared
    filters: { network: "", category: "" },
    timer: null,
    busy: false,
  };
  const $ = (id) => document.getElementById(id);

  // ---- building DOM nodes: text only ----

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function text(value) {
    return value === null || value === undefined || value === "" ? "–" : String(value);
  }

  function cell(content, className) {
    return el("td", className, content instanceof Node ? content : text(content));
  }

  function fill(tbody, rows, columns, emptyText) {
    const nodes = rows.length ? rows : [el("tr", "placeholder", emptyCell(columns, emptyText))];
    tbody.replaceChildren(...nodes);
  }

  function emptyCell(columns, message) {
    const td = el("td", null, message);
    td.colSpan = columns;
    return td;
  }

  // ---- formatting ----

  function utc(iso) {
    const t = new Date(iso);
    if (!iso || Number.isNaN(t.getTime())) return text(iso);
    return t.toISOString().slice(0, 16).replace("T", " ");
  }

  function age(iso) {
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!Number.isFinite(seconds) || seconds < 0) return "";
    if (seconds < 90) return "just now";
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function timeNode(iso) {
    if (!iso) return text(iso);
    const node = el("time", null, utc(iso));
    node.dateTime = String(iso);
    node.title = String(iso);
    const ago = age(iso);
    return ago ? el("span", "when", node, el("small", "muted", ` ${ago}`)) : node;
  }

  function networkNode(item) {
    const asn = Number.isInteger(item.asn) ? `AS${item.asn}` : null;
    const name = item.network ? String(item.network) : asn || "unknown network";
    return el("span", "network", name, asn && item.network ? el("small", "muted", ` ${asn}`) : null);
  }

  function confidenceNode(value) {
    const c = Number(value);
    if (!Number.isFinite(c)) return text(null);
    const meter = el("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = c;
    return el("span", "confidence", meter, ` ${Math.round(c * 100)} %`);
  }

  function probesNode(probes) {
    const list = Array.isArray(probes) ? probes.map(String) : [];
    const node = el("span", null, String(list.length));
    node.title = list.join(", ");
    return node;
  }

  function badge(verdict) {
    const status = verdict && STATUSES.has(verdict.status) ? verdict.status : "unknown";
    const label = verdict && verdict.status ? String(verdict.status) : "no verdict";
    return el("span", `badge badge-${status}`, label);
  }

  function methodNode(verdict) {
    if (!verdict) return text(null);
    const parts = [verdict.method, verdict.detail].filter((v) => v).map(String);
    const node = el("span", null, parts.length ? parts.join(" · ") : "–");
    if (verdict.blockpage) node.append(el("small", "muted", ` page: ${verdict.blockpage}`));
    return node;
  }

  // ---- the collector's API ----

  async function getJSON(path, params = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    } catch (e) {
      throw new Error(`${path}: the collector does not answer (${e.message})`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const why = body && typeof body.error === "string" ? body.error : response.statusText;
      throw new Error(`${path}: HTTP ${response.status}: ${why}`);
    }
    if (body === null || typeof body !== "object") throw new Error(`${path}: the answer is not JSON`);
    return body;
  }

  async function listOf(path, key, params) {
    const body = await getJSON(path, params);
    if (!Array.isArray(body[key])) throw new Error(`${path}: the answer has no "${key}" list`);
    return body[key];
  }

  async function newest(since) {
    let kept = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const body = await getJSON("/api/v1/measurements", { since, cursor, limit: PAGE_LIMIT });
      if (!Array.isArray(body.measurements)) throw new Error("/api/v1/measurements: no list");
      kept = kept.concat(body.measurements).slice(-LATEST);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    return kept.reverse();
  }

  async function latestMeasurements() {
    const now = Date.now();
    for (const minutes of WINDOWS_MINUTES) {
      const since = minutes === null ? null : new Date(now - minutes * 60_000).toISOString();
      const found = await newest(since);
      if (found.length >= LATEST || since === null) return found;
    }
    return [];
  }

  // ---- rendering ----

  function byNetworkThenService(a, b) {
    const na = a.network === null || a.network === undefined ? "\uffff" : String(a.network);
    const nb = b.network === null || b.network === undefined ? "\uffff" : String(b.network);
    return na.localeCompare(nb) || String(a.service).localeCompare(String(b.service))
      || String(a.method).localeCompare(String(b.method));
  }

  function flagRow(flag, closed) {
    const cells = [
      cell(networkNode(flag)),
      cell(flag.service, "service"),
      cell(flag.category),
      cell(flag.method, "method"),
      cell(timeNode(flag.first_seen)),
      cell(probesNode(flag.probes), "num"),
      cell(confidenceNode(flag.confidence)),
    ];
    if (closed) cells.push(cell(timeNode(flag.closed_at)));
    return el("tr", `flag flag-${closed ? "closed" : "open"}`, ...cells);
  }

  function setOptions(select, values, chosen, allLabel) {
    if (chosen) values.add(chosen); // a filter from the address stays, even with no flag to match
    const options = [...values].sort((a, b) => a.localeCompare(b)).map((v) => {
      const option = el("option", null, v);
      option.value = v;
      return option;
    });
    const all = el("option", null, allLabel);
    all.value = "";
    select.replaceChildren(all, ...options);
    select.value = chosen;
  }

  function renderFilters(flags) {
    const networks = new Set(flags.filter((f) => f.network).map((f) => String(f.network)));
    const categories = new Set(flags.filter((f) => f.category).map((f) => String(f.category)));
    setOptions($("filter-network"), networks, state.filters.network, "all networks");
    setOptions($("filter-category"), categories, state.filters.category, "all categories");
  }

  function readFilters() {
    const params = new URLSearchParams(window.location.search);
    state.filters.network = params.get("network") || "";
    state.filters.category = params.get("category") || "";
  }

  function changeFilter(key, select) {
    state.filters[key] = select.value;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
    const query = params.toString();
    window.history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
    renderFlags();
  }

  function unavailable(tableId, columns) {
    fill($(tableId).tBodies[0], [], columns, "Not available: see the errors above.");
  }

  function renderFlags() {
    if (state.flags === null) {
      unavailable("open-flags", 7);
      unavailable("closed-flags", 8);
      return;
    }
    const { network, category } = state.filters;
    const shown = state.flags
      .filter((f) => (!network || String(f.network) === network)
        && (!category || String(f.category) === category))
      .sort(byNetworkThenService);
    for (const closed of [false, true]) {
      const all = state.flags.filter((f) => (f.state === "closed") === closed);
      const rows = shown.filter((f) => (f.state === "closed") === closed);
      const filtered = network || category ? " matching the filters" : "";
      fill($(closed ? "closed-flags" : "open-flags").tBodies[0], rows.map((f) => flagRow(f, closed)),
        closed ? 8 : 7, `No ${closed ? "closed" : "open"} flag${filtered}.`);
      const count = rows.length === all.length ? `(${all.length})` : `(${rows.length} of ${all.length})`;
      $(closed ? "closed-count" : "open-count").textContent = count;
    }
  }

  function collateralRow(item) {
    const services = Array.isArray(item.services) ? item.services.map(String) : [];
    const list = el("ul", "chips", ...services.map((s) => el("li", null, s)));
    const summary = el("strong", null,
      `${services.length} service${services.length === 1 ? "" : "s"} down`);
    return el("tr", "collateral",
      cell(el("code", null, text(item.ip))),
      cell(networkNode(item)),
      cell(el("div", "behind", summary, list)),
      cell(timeNode(item.first_seen)),
      cell(timeNode(item.last_seen)));
  }

  function renderCollateral() {
    if (state.collateral === null) {
      unavailable("collateral-table", 5);
      return;
    }
    const size = (item) => (Array.isArray(item.services) ? item.services.length : 0);
    const rows = [...state.collateral].sort((a, b) => size(b) - size(a)
      || String(a.network).localeCompare(String(b.network)) || String(a.ip).localeCompare(String(b.ip)));
    fill($("collateral-table").tBodies[0], rows.map(collateralRow), 5,
      "No address is blocked at the IP level.");
    $("collateral-count").textContent = `(${rows.length})`;
  }

  function measurementRow(m) {
    const probe = m.probe || {};
    const target = m.target || {};
    const probeNode = el("code", null, text(probe.id));
    return el("tr", "measurement",
      cell(timeNode(m.started_at)),
      cell(networkNode(probe)),
      cell(target.service, "service"),
      cell(target.domain),
      cell(badge(m.verdict)),
      cell(methodNode(m.verdict), "detail"),
      cell(probeNode));
  }

  function renderMeasurements() {
    if (state.measurements === null) {
      unavailable("measurements-table", 7);
      return;
    }
    fill($("measurements-table").tBodies[0], state.measurements.map(measurementRow), 7,
      "No measurement yet.");
    $("measurements-count").textContent = `(${state.measurements.length})`;
  }

  function renderErrors(errors) {
    const items = errors.map(([part, message]) => {
      const since = state.loadedAt[part];
      const shown = since ? ` (showing the data of ${since.toISOString().slice(11, 19)} UTC)` : "";
      return el("li", null, `${message}${shown}`);
    });
    $("error-list").replaceChildren(...items);
    $("errors").hidden = items.length === 0;
  }

  // ---- refreshing ----

  async function load() {
    const parts = {
      flags: () => listOf("/api/v1/flags", "flags"),
      collateral: () => listOf("/api/v1/collateral", "addresses"),
      measurements: latestMeasurements,
    };
    const names = Object.keys(parts);
    const results = await Promise.allSettled(names.map((name) => parts[name]()));
    const errors = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        state[names[i]] = result.value;
        state.loadedAt[names[i]] = new Date();
      } else {
        errors.push([names[i], String((result.reason && result.reason.message) || result.reason)]);
      }
    });
    return [errors, names.length];
  }

  function render(errors, parts) {
    renderFilters(state.flags || []);
    renderFlags();
    renderCollateral();
    renderMeasurements();
    renderErrors(errors);
    const now = new Date().toISOString().slice(0, 19).replace("T", " ");
    $("updated").textContent = errors.length
      ? `Last attempt ${now} UTC: ${errors.length} of ${parts} parts failed`
      : `Last updated ${now} UTC`;
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    window.clearTimeout(state.timer);
    try {
      const [errors, parts] = await load();
      render(errors, parts);
    } catch (e) {
      // a record the page cannot show must not stop the refreshes: say so in the page
      renderErrors([["dashboard", `the page failed to show the data: ${e.message}`]]);
    } finally {
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      state.busy = false;
      state.timer = window.setTimeout(refresh, REFRESH_MS);
    }
  }

  function start() {
    readFilters();
    for (const key of ["network", "category"]) {
      const select = $(`filter-${key}`);
      select.addEventListener("change", () => changeFilter(key, select));
    }
    $("refresh").addEventListener("click", refresh);
    refresh();
  }

  start();
})();
