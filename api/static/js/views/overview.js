// Overview: every station the user may see, grouped (by municipality and power area, or by status), with
// a filter (name or id, status, municipality), as tiles in a virtualised list: only the rows in and near
// the window exist in the page, so 10,000 stations cost what the few dozen on screen cost. Keyed updates:
// a tile is rewritten only when what it shows changed (its status, level, pumps, alarms, time to overflow),
// its age text every second; the layout (which tile where) is recomputed only when the filter, the
// grouping, the set of stations or a station's group changed. Colours are the server's status word (CSS).
import { age, esc, minutes, num } from "../fmt.js";
import { t, term } from "../i18n.js";
import { pointView, serverNow, state, stationAge, stationLive, stationStatus, statusRank } from "../store.js";

export const wants = ["stations", "dispatch", "connection", "tick"];
const TILE_W = 230, GAP = 8, ROW_H = 142, HEAD_H = 34, SUB_H = 26, BUFFER_PX = 600;
const filters = { q: "", status: "", tenant: "", group: "area" };

let root = null;
let body = null;       // the list's positioned box
let items = [];        // layout: [{key, kind: "h"|"s"|"r", y, h, text|ids}]
let total = 0;
let cols = 1;
let layoutSig = "";    // what the layout was made from
const shownRows = new Map(); // item key -> element in the page
const tiles = new Map();     // station id -> {el, key, ageKey}: the tiles in the page
let byStation = new Map();   // station id -> its dispatch entry (rebuilt on dispatch changes)
let groupOf = new Map();     // station id -> group signature the layout used
let summaryKey = "";
let scrollQueued = false;

export function mount(el) {
  root = el;
  root.innerHTML = `<div class="ov-bar">
      <div class="summary" id="ov-summary"></div>
      <div class="filters ov-filters">
        <label>${t("overview.find")}<input id="ov-q" type="search" placeholder="${esc(t("overview.find_hint"))}"></label>
        <label>${t("alarms.state")}<select id="ov-status"><option value="">${t("common.all")}</option></select></label>
        <label>${t("alarms.tenant")}<select id="ov-tenant"><option value="">${t("common.all")}</option>
          ${Object.values(state.tenants).map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("")}</select></label>
        <label>${t("overview.group")}<select id="ov-group"><option value="area">${t("overview.group_area")}</option>
          <option value="status">${t("overview.group_status")}</option><option value="none">${t("overview.group_none")}</option></select></label>
        <span id="ov-count" class="muted"></span>
      </div></div>
    <div id="ov-body" class="vlist"></div><p id="ov-empty" class="muted" hidden></p>`;
  body = root.querySelector("#ov-body");
  shownRows.clear(); tiles.clear(); items = []; layoutSig = ""; summaryKey = ""; groupOf = new Map();
  for (const k of ["q", "status", "tenant", "group"]) {
    const input = root.querySelector(`#ov-${k}`);
    input.value = filters[k];
    input.addEventListener("input", () => { filters[k] = input.value; relayout(); });
  }
  root.querySelector("#ov-summary").addEventListener("click", e => {
    const b = e.target.closest("[data-filter-status]");
    if (!b) return;
    filters.status = filters.status === b.dataset.filterStatus ? "" : b.dataset.filterStatus;
    root.querySelector("#ov-status").value = filters.status;
    relayout();
  });
  window.addEventListener("scroll", onScroll, { passive: true });
  // the number of columns follows the list's own width (a window resized, a scrollbar come or gone)
  resizer = new ResizeObserver(() => { if (root && columns() !== cols) relayout(); });
  resizer.observe(body);
}

let resizer = null;
function columns() {
  const width = body.clientWidth || root.clientWidth || 1200;
  return Math.max(1, Math.floor((width + GAP) / (TILE_W + GAP)));
}

export function unmount() {
  window.removeEventListener("scroll", onScroll);
  if (resizer) resizer.disconnect();
  resizer = null;
  root = null; body = null;
  shownRows.clear(); tiles.clear();
}

function onScroll() {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => { scrollQueued = false; if (root) place(); });
}

export function levelBar(st, lv) {
  const L = st.levels;
  if (!L || !L.spill_m) return "";
  const top = L.spill_m;
  const pct = v => `${Math.max(0, Math.min(100, (v / top) * 100)).toFixed(1)}%`;
  const marks = ["stop_m", "start_m", "hwl_m"].filter(k => L[k] != null)
    .map(k => `<span class="mark ${k === "hwl_m" ? "hwl" : ""}" data-css-left="${pct(L[k])}" title="${t("level." + k)} ${L[k]} m"></span>`).join("");
  const fill = lv && lv.value != null
    ? `<span class="fill ${lv.value >= L.hwl_m ? "high" : ""}" data-css-width="${pct(lv.value)}"></span>` : "";
  return `<span class="lbar ${lv && lv.live ? "" : "stale"}" role="meter" aria-valuemin="0" aria-valuemax="${top}"
    aria-valuenow="${lv && lv.value != null ? lv.value : ""}">${fill}${marks}</span>`;
}

export function pumpChips(st) {
  const out = [];
  for (let n = 1; n <= 8; n++) {
    const run = pointView(st, `pump${n}_running`);
    if (!run) break;
    const fault = pointView(st, `pump${n}_faulted`);
    let cls = "stop", label = t("pump.stop");
    if (!run.live) { cls = "unknown"; label = t("pump.unknown"); }
    else if (fault && fault.value === true) { cls = "fault"; label = t("pump.fault"); }
    else if (run.value === true) { cls = "run"; label = t("pump.run"); }
    out.push(`<span class="pump ${cls}" title="P${n}: ${label}">P${n}</span>`);
  }
  return `<span class="pumps">${out.join("")}</span>`;
}

// What a tile shows but its age, as one string: the tile is rewritten only when this changes.
function tileContent(st) {
  const status = stationStatus(st);
  const lv = pointView(st, "wet_well_level_m");
  const stale = !stationLive(st);
  const entry = byStation.get(st.id);
  const tto = pointView(st, "tto_spill_min");
  let ttoTxt = "";
  if (entry || status === "power_failure") {
    const m = entry && entry.spill_at ? (Date.parse(entry.spill_at) - serverNow()) / 60000 : tto && tto.live ? tto.value : null;
    if (m != null) ttoTxt = `<span class="tto">${t("overview.tto")} ${minutes(Math.max(0, m))}</span>`;
  }
  const alarms = st.active_alarms.map(n => term("alarm", n)).join(", ");
  const suppressed = (st.suppressed_alarms || []).map(n => term("alarm", n)).join(", ");
  const supTxt = suppressed ? `<span class="suppressed">${esc(t("overview.suppressed", { names: suppressed }))}</span>` : "";
  const lvTxt = lv && lv.value != null ? `${num(lv.value, 2)} m` : "–";
  return `<div class="head"><span class="name">${esc(st.name)}</span><span class="badge st-${status}">${esc(term("status", status))}</span></div>
    <div class="sid">${esc(st.id)}</div>
    <div class="row">${levelBar(st, lv)}<span class="val" title="${esc(lv ? term("quality", lv.quality) : "")}">${lvTxt}</span></div>
    <div class="row">${pumpChips(st)}${ttoTxt}</div>
    <div class="alarms">${esc(alarms)}${supTxt}</div>
    <div class="row"><span class="age ${stale ? "old" : ""}"></span></div>`;
}

function updateTile(st, tl) {
  const status = stationStatus(st);
  const stale = !stationLive(st);
  const html = tileContent(st);
  if (html !== tl.key) {
    tl.key = html;
    tl.el.className = `tile st-${status}${stale ? " stale" : ""}`;
    tl.el.dataset.status = status;
    tl.el.innerHTML = html; // one tile, and only when it shows something new
    tl.ageKey = "";
  }
  const a = `${t("overview.age")} ${age(stationAge(st))}${stale ? " · " + t("quality.stale") : ""}`;
  if (a !== tl.ageKey) { tl.ageKey = a; tl.el.querySelector(".age").textContent = a; }
}

function tileFor(id) {
  let tl = tiles.get(id);
  if (!tl) {
    const el = document.createElement("a");
    el.href = `#/station/${encodeURIComponent(id)}`;
    el.dataset.station = id;
    tl = { el, key: "", ageKey: "" };
    tiles.set(id, tl);
  }
  return tl;
}

function matches(st) {
  if (filters.tenant && st.tenant !== filters.tenant) return false;
  if (filters.status && stationStatus(st) !== filters.status) return false;
  if (filters.q) {
    const q = filters.q.toLowerCase();
    if (!st.id.toLowerCase().includes(q) && !st.name.toLowerCase().includes(q)) return false;
  }
  return true;
}

// The group a station goes in, as the layout needs it (its status only when grouping or filtering by it).
function groupSig(st) {
  const byStatus = filters.group === "status" || filters.status;
  return `${st.tenant}|${st.power_area || ""}|${byStatus ? stationStatus(st) : ""}`;
}

function tenantName(id) { return state.tenants[id] ? state.tenants[id].name : id; }

// Groups → a flat list of positioned items: headers and rows of `cols` tiles.
function relayout() {
  if (!root) return;
  cols = columns();
  const list = [...state.stations.values()];
  groupOf = new Map(list.map(s => [s.id, groupSig(s)]));
  const shown = list.filter(matches);
  const groups = new Map(); // key -> {title, sub, ids}
  const add = (key, title, sub, id) => {
    if (!groups.has(key)) groups.set(key, { title, sub, ids: [] });
    groups.get(key).ids.push(id);
  };
  for (const s of shown) {
    if (filters.group === "status") {
      const st = stationStatus(s);
      add(`${String(statusRank(st)).padStart(3, "0")}|${st}`, term("status", st), null, s.id);
    } else if (filters.group === "none") {
      add("all", t("overview.stations", { n: shown.length }), null, s.id);
    } else {
      add(`${s.tenant}|${s.power_area || "\uffff"}`, tenantName(s.tenant),
        `${t("overview.area")}: ${s.power_area || t("overview.no_area")}`, s.id);
    }
  }
  items = [];
  let y = 0, lastTitle = null;
  for (const [key, g] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (g.title !== lastTitle) { items.push({ key: `h:${key}`, kind: "h", y, h: HEAD_H, text: g.title, group: key }); y += HEAD_H; lastTitle = g.title; }
    if (g.sub) { items.push({ key: `s:${key}`, kind: "s", y, h: SUB_H, text: `${g.sub} (${g.ids.length})` }); y += SUB_H; }
    g.ids.sort();
    for (let i = 0; i < g.ids.length; i += cols) {
      items.push({ key: `r:${key}:${i}`, kind: "r", y, h: ROW_H, ids: g.ids.slice(i, i + cols) });
      y += ROW_H;
    }
  }
  total = y;
  body.style.height = `${total}px`;
  layoutSig = `${filters.q}|${filters.status}|${filters.tenant}|${filters.group}|${cols}|${list.length}`;
  for (const el of shownRows.values()) el.remove();
  shownRows.clear();
  const empty = root.querySelector("#ov-empty");
  empty.hidden = shown.length > 0;
  empty.textContent = !list.length ? (state.connected ? t("overview.none") : t("conn.waiting")) : t("overview.no_match");
  root.querySelector("#ov-count").textContent = shown.length === list.length ? ""
    : t("overview.showing", { n: shown.length, of: list.length });
  place();
}

// Put in the page the items in and near the window, take out the others; fill in their tiles.
function place() {
  const top = body.getBoundingClientRect().top; // the list's top relative to the window
  const from = -top - BUFFER_PX, to = -top + window.innerHeight + BUFFER_PX;
  const want = new Set();
  let lo = 0, hi = items.length; // first item ending after `from` (items are in y order)
  while (lo < hi) { const mid = (lo + hi) >> 1; if (items[mid].y + items[mid].h < from) lo = mid + 1; else hi = mid; }
  for (let i = lo; i < items.length && items[i].y <= to; i++) {
    const it = items[i];
    want.add(it.key);
    let el = shownRows.get(it.key);
    if (!el) {
      el = document.createElement("div");
      el.className = it.kind === "r" ? "vrow tiles" : it.kind === "h" ? "vrow vhead" : "vrow vsub";
      el.style.transform = `translateY(${it.y}px)`;
      if (it.kind === "r") {
        el.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
        for (const id of it.ids) {
          const st = state.stations.get(id);
          if (!st) continue;
          const tl = tileFor(id);
          updateTile(st, tl);
          el.appendChild(tl.el);
        }
      } else {
        el.textContent = it.text;
        if (it.kind === "h") el.dataset.group = it.group;
      }
      body.appendChild(el);
      shownRows.set(it.key, el);
    }
  }
  for (const [key, el] of shownRows) {
    if (!want.has(key)) {
      for (const a of el.querySelectorAll(".tile")) tiles.delete(a.dataset.station);
      el.remove();
      shownRows.delete(key);
    }
  }
}

function renderSummary(stations) {
  const counts = {};
  for (const s of stations) { const k = stationStatus(s); counts[k] = (counts[k] || 0) + 1; }
  const order = Object.keys(counts).sort((a, b) => statusRank(a) - statusRank(b));
  const key = `${stations.length}|${filters.status}|${order.map(k => `${k}:${counts[k]}`).join(",")}`;
  if (key === summaryKey) return;
  summaryKey = key;
  root.querySelector("#ov-summary").innerHTML =
    `<strong>${t("overview.stations", { n: stations.length })}</strong> ` +
    order.map(k => `<button type="button" class="badge st-${k} ${filters.status === k ? "on" : ""}" data-filter-status="${k}"
      aria-pressed="${filters.status === k}">${esc(term("status", k))} ${counts[k]}</button>`).join(" ");
  const sel = root.querySelector("#ov-status");
  const opts = state.statusLadder.length ? state.statusLadder : order;
  const want = opts.join(",");
  if (sel.dataset.opts !== want) {
    sel.dataset.opts = want;
    sel.innerHTML = `<option value="">${t("common.all")}</option>` + opts.map(k => `<option value="${k}">${esc(term("status", k))}</option>`).join("");
    sel.value = filters.status;
  }
}

export function render(what, ids) {
  if (!root) return;
  const all = !what || what.has("all") || what.has("connection");
  if (all || what.has("dispatch")) byStation = new Map(state.dispatch.data.map(e => [e.station, e]));
  const stations = [...state.stations.values()];
  renderSummary(stations);
  // a new layout when what it was made from changed: the filter, the set of stations, a station's group
  let again = all || !layoutSig || stations.length !== groupOf.size;
  if (!again && ids) for (const id of ids) {
    const st = state.stations.get(id);
    if (!groupOf.has(id) || (st && groupOf.get(id) !== groupSig(st))) { again = true; break; }
  }
  if (again) { relayout(); return; }
  // else only the tiles in the page: those whose station changed, or all of them when time moved on
  const every = what.has("tick") || what.has("clock") || what.has("dispatch");
  if (every) {
    for (const [id, tl] of tiles) { const st = state.stations.get(id); if (st) updateTile(st, tl); }
  } else if (ids) {
    for (const id of ids) { const tl = tiles.get(id); const st = state.stations.get(id); if (tl && st) updateTile(st, tl); }
  }
}
