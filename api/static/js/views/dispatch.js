// Dispatch board: stations that cannot pump, ranked by time to overflow. The counters run down every
// second on the server's clock between updates, and the ranking follows them live.
import { countdown, esc, minutes, num } from "../fmt.js";
import { t, term } from "../i18n.js";
import * as resources from "../resources.js";
import { serverNow, state } from "../store.js";

let root = null;
let lastOrder = [];

export function mount(el) {
  root = el;
  root.innerHTML = `<div class="panel"><h2>${t("dispatch.title")}</h2><p class="hint">${t("dispatch.hint")}</p>
    <div id="dp-body"></div></div>`;
  root.addEventListener("click", ev => resources.onClick(ev, render));
  root.addEventListener("change", resources.onPick);
  resources.load().then(render);
}
export function unmount() { root = null; lastOrder = []; tbody = null; rowsBy = new Map(); }

export function ranked() {
  const now = serverNow();
  return state.dispatch.data.map(e => ({
    ...e,
    left_s: e.spill_at ? (Date.parse(e.spill_at) - now) / 1000 : Infinity,
  })).sort((a, b) => (a.left_s - b.left_s) || (a.rank - b.rank));  // ties: the server's ranking (alarms/dispatch.py)
}

// Keyed rows: a row is made once per station and its cells rewritten only when its entry changed; each
// second only the countdowns' text changes, and rows move (their elements, not new ones) when the ranking does.
let rowsBy = new Map(); // station -> {tr, key}
let tbody = null;

function rowKey(e, st) {
  return JSON.stringify([e.name, e.tenant, e.power_area, e.priority, e.tto_spill_conservative_min, e.level_m,
    e.inflow_m3_min, e.reasons, st && st.levels ? st.levels.spill_m : null, e.resources, e.late]);
}

function cells(e, st) {
  const tenant = state.tenants[e.tenant] ? state.tenants[e.tenant].name : e.tenant;
  return `<td class="rank" data-label="#"></td>
    <td data-label="${t("alarms.station")}"><a href="#/station/${encodeURIComponent(e.station)}"><b>${esc(e.name)}</b></a>
      <div class="muted">${esc(e.station)} · ${esc(tenant)} · ${esc(e.power_area || "")}</div></td>
    <td class="count-down" data-label="${t("dispatch.left")}"></td>
    <td data-label="${t("dispatch.conservative")}">${minutes(e.tto_spill_conservative_min)}</td>
    <td data-label="${t("dispatch.level")}">${e.level_m != null ? num(e.level_m, 2) + " m" : "–"}${st && st.levels ? ` <span class="muted">/ ${t("level.spill_m")} ${st.levels.spill_m} m</span>` : ""}</td>
    <td data-label="${t("dispatch.inflow")}">${e.inflow_m3_min != null ? num(e.inflow_m3_min, 3) + " m³/min" : "–"}</td>
    <td data-label="${t("dispatch.reasons")}">${e.reasons.map(r => esc(term("alarm", r))).join(", ")}</td>
    <td class="resources" data-label="${t("res.title")}">${resources.cell(e)}</td>`;
}

export function render() {
  if (!root) return;
  const rows = ranked();
  const order = rows.map(r => r.station);
  const body = root.querySelector("#dp-body");
  if (!rows.length) {
    const msg = state.connected ? t("dispatch.empty") : t("conn.waiting");
    if (!body.querySelector("p.muted") || body.textContent !== msg) body.innerHTML = `<p class="muted">${msg}</p>`;
    tbody = null; rowsBy = new Map(); lastOrder = order;
    return;
  }
  if (!tbody || !body.contains(tbody)) {
    body.innerHTML = `<table class="board stack"><thead><tr><th>#</th><th>${t("alarms.station")}</th><th>${t("dispatch.left")}</th>
      <th>${t("dispatch.conservative")}</th><th>${t("dispatch.level")}</th><th>${t("dispatch.inflow")}</th><th>${t("dispatch.reasons")}</th><th>${t("res.title")}</th></tr></thead><tbody></tbody></table>`;
    tbody = body.querySelector("tbody");
    rowsBy = new Map();
  }
  const keep = new Set(order);
  for (const [sid, r] of rowsBy) if (!keep.has(sid)) { r.tr.remove(); rowsBy.delete(sid); }
  const same = order.length === lastOrder.length && order.every((s, i) => s === lastOrder[i]);
  rows.forEach((e, i) => {
    const st = state.stations.get(e.station);
    let r = rowsBy.get(e.station);
    if (!r) {
      const tr = document.createElement("tr");
      tr.dataset.station = e.station;
      r = { tr, key: "", left: "" };
      rowsBy.set(e.station, r);
    }
    const key = rowKey(e, st) + resources.cell(e); // the resources' cell also follows the register (resources.js)
    if (key !== r.key) { r.key = key; r.tr.innerHTML = cells(e, st); r.left = ""; }
    const moved = lastOrder.length && lastOrder.indexOf(e.station) !== i;
    r.tr.className = `prio-${e.priority}${moved ? " moved" : ""}${e.late ? " late" : ""}`;
    if (r.tr.dataset.rank !== String(i + 1)) { r.tr.dataset.rank = String(i + 1); r.tr.querySelector(".rank").textContent = i + 1; }
    const left = isFinite(e.left_s) ? countdown(e.left_s) : t("dispatch.unknown");
    if (left !== r.left) { r.left = left; r.tr.querySelector(".count-down").textContent = left; }
    if (!same && tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
  });
  lastOrder = order;
}
