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
export function unmount() { root = null; lastOrder = []; }

export function ranked() {
  const now = serverNow();
  return state.dispatch.data.map(e => ({
    ...e,
    left_s: e.spill_at ? (Date.parse(e.spill_at) - now) / 1000 : Infinity,
  })).sort((a, b) => (a.left_s - b.left_s) || (a.rank - b.rank));  // ties: the server's ranking (alarms/dispatch.py)
}

export function render() {
  if (!root) return;
  const rows = ranked();
  const order = rows.map(r => r.station);
  const body = root.querySelector("#dp-body");
  if (!rows.length) {
    body.innerHTML = `<p class="muted">${state.connected ? t("dispatch.empty") : t("conn.waiting")}</p>`;
    lastOrder = order;
    return;
  }
  body.innerHTML = `<table class="board stack"><thead><tr><th>#</th><th>${t("alarms.station")}</th><th>${t("dispatch.left")}</th>
      <th>${t("dispatch.conservative")}</th><th>${t("dispatch.level")}</th><th>${t("dispatch.inflow")}</th><th>${t("dispatch.reasons")}</th><th>${t("res.title")}</th></tr></thead><tbody>
    ${rows.map((e, i) => {
      const st = state.stations.get(e.station);
      const moved = lastOrder.length && lastOrder.indexOf(e.station) !== i;
      const tenant = state.tenants[e.tenant] ? state.tenants[e.tenant].name : e.tenant;
      return `<tr class="prio-${e.priority} ${moved ? "moved" : ""} ${e.late ? "late" : ""}" data-station="${esc(e.station)}" data-rank="${i + 1}">
        <td class="rank" data-label="#">${i + 1}</td>
        <td data-label="${t("alarms.station")}"><a href="#/station/${encodeURIComponent(e.station)}"><b>${esc(e.name)}</b></a>
          <div class="muted">${esc(e.station)} · ${esc(tenant)} · ${esc(e.power_area || "")}</div></td>
        <td class="count-down" data-label="${t("dispatch.left")}">${isFinite(e.left_s) ? countdown(e.left_s) : t("dispatch.unknown")}</td>
        <td data-label="${t("dispatch.conservative")}">${minutes(e.tto_spill_conservative_min)}</td>
        <td data-label="${t("dispatch.level")}">${e.level_m != null ? num(e.level_m, 2) + " m" : "–"}${st && st.levels ? ` <span class="muted">/ ${t("level.spill_m")} ${st.levels.spill_m} m</span>` : ""}</td>
        <td data-label="${t("dispatch.inflow")}">${e.inflow_m3_min != null ? num(e.inflow_m3_min, 3) + " m³/min" : "–"}</td>
        <td data-label="${t("dispatch.reasons")}">${e.reasons.map(r => esc(term("alarm", r))).join(", ")}</td>
        <td class="resources" data-label="${t("res.title")}">${resources.cell(e)}</td></tr>`;
    }).join("")}</tbody></table>`;
  lastOrder = order;
}
