// Station detail: the mimic, trends of chosen points over a chosen range (server-side downsampling: one
// request per point with as many buckets as the chart has pixels), its alarms, incidents and assets.
import { api } from "../api.js";
import { age, esc, num, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { mimic } from "../mimic.js";
import { serverNow, state, stationAge, stationStatus } from "../store.js";
import { draw } from "../trend.js";
import { alarmAction, alarmRows, sortAlarms } from "./alarms.js";

let root = null, sid = null, detail = null, timer = null;
let chosen = ["wet_well_level_m"];
let range = 6 * 3600;
// the points an operator trends most; every other one is one click further
const MAIN_POINTS = ["wet_well_level_m", "pump1_current_a", "pump2_current_a", "tto_spill_min", "inflow_m3_min",
  "mains_failed", "pump1_running", "pump2_running", "battery_voltage_v"];
const RANGES = [[3600, "1h"], [6 * 3600, "6h"], [86400, "24h"], [7 * 86400, "7d"], [30 * 86400, "30d"]];

export function mount(el, arg) {
  root = el; sid = arg; detail = null;
  root.innerHTML = `<div id="sd-head"></div><div class="detail">
      <div><div class="panel mimic" id="sd-mimic"></div><div class="panel" id="sd-facts"></div></div>
      <div><div class="panel trend"><h3>${t("station.trends")}</h3><div class="trend-controls" id="sd-ctl"></div>
        <svg id="sd-chart" preserveAspectRatio="none"></svg><div class="legend" id="sd-legend"></div></div>
        <div class="panel"><h3>${t("station.alarms")}</h3><div id="sd-alarms"></div></div>
        <div class="panel"><h3>${t("station.assets")}</h3><div id="sd-assets"></div></div>
        <div class="panel"><h3>${t("station.coverage")}</h3><div id="sd-coverage"></div></div>
        <div class="panel"><h3>${t("station.incidents")}</h3><div id="sd-incidents"></div></div></div></div>`;
  root.querySelector("#sd-alarms").addEventListener("click", async e => {
    const b = e.target.closest("button[data-act]");
    if (b) await alarmAction(b.dataset.act, Number(b.dataset.id));
  });
  load();
  timer = setInterval(() => { load(); }, 30000); // assets, incidents, and the trend's right edge
}
export function unmount() { root = null; clearInterval(timer); }

async function load() {
  try {
    detail = await api(`/console/stations/${encodeURIComponent(sid)}`);
  } catch (e) {
    if (root) root.querySelector("#sd-head").innerHTML = `<p class="error">${esc(e.status === 404 ? t("station.not_found") : e.message)}</p>`;
    return;
  }
  if (!root) return;
  controls();
  assets();
  coverage();
  incidents();
  await trend();
}

function controls() {
  const ctl = root.querySelector("#sd-ctl");
  const box = p => `<label><input type="checkbox" value="${esc(p.name)}" ${chosen.includes(p.name) ? "checked" : ""}>
      ${esc(term("point", p.name))}${p.unit ? ` (${esc(p.unit)})` : ""}</label>`;
  const main = detail.points.filter(p => MAIN_POINTS.includes(p.name));
  const rest = detail.points.filter(p => !MAIN_POINTS.includes(p.name));
  ctl.innerHTML = `<label>${t("station.range")} <select id="sd-range">${RANGES.map(([s, k]) =>
      `<option value="${s}" ${s === range ? "selected" : ""}>${t("range." + k)}</option>`).join("")}</select></label>
    ${main.map(box).join("")}
    ${rest.length ? `<details><summary>${t("station.more_points", { n: rest.length })}</summary>${rest.map(box).join(" ")}</details>` : ""}`;
  ctl.querySelector("#sd-range").addEventListener("change", e => { range = Number(e.target.value); trend(); });
  for (const cb of ctl.querySelectorAll("input[type=checkbox]")) cb.addEventListener("change", () => {
    chosen = [...ctl.querySelectorAll("input:checked")].map(x => x.value);
    trend();
  });
}

async function trend() {
  if (!root || !detail) return;
  const svg = root.querySelector("#sd-chart");
  const end = new Date(serverNow()), start = new Date(end.getTime() - range * 1000);
  const n = Math.max(50, Math.min(2000, Math.round(svg.clientWidth || 800)));
  const series = await Promise.all(chosen.map(async p => {
    const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), max_points: String(n) });
    try {
      const h = await api(`/stations/${encodeURIComponent(sid)}/points/${encodeURIComponent(p)}/history?${q}`);
      return { name: p, unit: h.unit, data: h.data.map(d => typeof d.value === "boolean" ? { ...d, value: +d.value } : d), downsampled: h.downsampled };
    } catch { return { name: p, unit: null, data: [] }; }
  }));
  if (!root) return;
  const L = detail.station.levels || {};
  const marks = chosen.includes("wet_well_level_m")
    ? [["hwl_m", "#c8102e"], ["lwl_m", "#e46c0a"]].filter(([k]) => L[k] != null).map(([k, c]) => ({ value: L[k], colour: c, label: t("level." + k) }))
    : [];
  draw(svg, series, start.toISOString(), end.toISOString(), marks);
  root.querySelector("#sd-legend").innerHTML = series.map(s =>
    `<span><i data-css-background="${esc(s.colour)}"></i>${esc(term("point", s.name))}${s.unit ? ` (${esc(s.unit)})` : ""}
     <span class="muted">${s.data.length} ${s.downsampled ? t("station.buckets") : t("station.samples")}</span></span>`).join("");
}

function assets() {
  const rows = detail.pumps.map(p => {
    const due = p.life_used != null && p.life_used >= 1;
    const pv = v => v && v.value != null ? num(v.value, 0) : "–";
    return `<tr data-pump="${esc(p.name)}"><td data-label="${t("assets.pump")}">${esc(p.name)}${p.standby ? ` <span class="muted">(${t("assets.standby")})</span>` : ""}</td>
      <td data-label="${t("assets.installed")}">${p.install_year ?? "–"}</td>
      <td data-label="${t("assets.age")}">${p.age_years != null ? `<span class="life ${due ? "due" : ""}" title="${Math.round(p.life_used * 100)} %"><span data-css-width="${Math.min(100, p.life_used * 100)}%"></span></span>
        ${t("assets.years", { n: p.age_years, life: p.standard_life_years })}` : "–"}</td>
      <td data-label="${t("assets.run_hours")}">${pv(p.run_hours_h)}</td><td data-label="${t("assets.starts")}">${pv(p.starts)}</td>
      <td data-label="${t("assets.rated")}">${num(p.rated_current_a, 1)} A${p.power_kw ? ` · ${num(p.power_kw, 1)} kW` : ""}${p.rated_flow_m3_min ? ` · ${num(p.rated_flow_m3_min, 2)} m³/min` : ""}</td></tr>`;
  }).join("");
  root.querySelector("#sd-assets").innerHTML = detail.pumps.length
    ? `<table class="stack"><thead><tr><th>${t("assets.pump")}</th><th>${t("assets.installed")}</th><th>${t("assets.age")}</th>
      <th>${t("assets.run_hours")}</th><th>${t("assets.starts")}</th><th>${t("assets.rated")}</th></tr></thead><tbody>${rows}</tbody></table>`
    : `<p class="muted">–</p>`;
}

// Which safety functions of its kind the station can alarm on: armed (by which rule, reading which points),
// waived (with the engineer's written reason) or not armed. `pumpwatch run` refuses to start with the last.
const COVERAGE_BADGE = { armed: "normal", waived: "maintenance", unarmed: "alarm" };
function coverage() {
  const cov = detail.station.coverage;
  const box = root.querySelector("#sd-coverage");
  if (!cov) { box.innerHTML = `<p class="muted">${t("coverage.none")}</p>`; return; }
  const name = f => {
    const own = term("function", f.function);
    const title = own === f.function ? f.title : own;
    return f.pump != null ? `${esc(title)} <span class="muted">${t("coverage.pump", { n: f.pump })}</span>` : esc(title);
  };
  const how = f => {
    if (f.state === "waived") return `${t("coverage.waived_because")} ${esc(f.waiver_reason)}`;
    if (f.state === "unarmed") return esc(f.why || "");
    return f.rules.filter(r => r.armed).map(r => `${esc(r.rule)} <span class="muted">← ${esc(
      r.sources.length ? r.sources.join(", ") : (r.via ? `${r.via} (${r.points.join(", ")})` : r.points.join(", ")))}</span>`).join("<br>");
  };
  const rows = cov.functions.map(f => `<tr data-function="${esc(f.function)}" data-pump="${f.pump ?? ""}" data-state="${f.state}">
      <td data-label="${t("coverage.function")}">${name(f)}</td>
      <td data-label="${t("coverage.state")}"><span class="badge st-${COVERAGE_BADGE[f.state]}">${esc(t("coverage.state." + f.state))}</span></td>
      <td data-label="${t("coverage.how")}">${how(f)}</td></tr>`).join("");
  const dropped = cov.rules_not_applied.length
    ? `<details><summary>${t("coverage.not_applied", { n: cov.rules_not_applied.length })}</summary><ul>${cov.rules_not_applied.map(d =>
        `<li>${esc(d.rule)}: <span class="muted">${esc(d.why)}</span></li>`).join("")}</ul></details>`
    : "";
  box.innerHTML = `<table class="stack"><thead><tr><th>${t("coverage.function")}</th><th>${t("coverage.state")}</th>
    <th>${t("coverage.how")}</th></tr></thead><tbody>${rows}</tbody></table>${dropped}`;
}

function incidents() {
  root.querySelector("#sd-incidents").innerHTML = detail.incidents.length
    ? `<table class="stack"><tbody>${detail.incidents.map(i => `<tr><td>${time(i.opened_at, true)}</td><td>${esc(i.title)}</td>
        <td>${esc(term("phase", i.phase))}</td><td>${t("station.incident_out", { out: i.stations_out, n: i.station_count })}</td></tr>`).join("")}</tbody></table>`
    : `<p class="muted">${t("station.no_incidents")}</p>`;
}

// Each part is rewritten only when its HTML changed (at 1 Hz only the age's text moves on).
const drawn = new WeakMap();
function put(sel, html) {
  const el = root.querySelector(sel);
  if (!el || drawn.get(el) === html) return;
  drawn.set(el, html);
  el.innerHTML = html;
}

export function render() {
  if (!root) return;
  const st = state.stations.get(sid);
  if (!st) {
    put("#sd-head", `<p class="muted">${state.connected ? t("station.not_found") : t("conn.waiting")}</p>`);
    return;
  }
  const status = stationStatus(st);
  const tenant = state.tenants[st.tenant] ? state.tenants[st.tenant].name : st.tenant;
  put("#sd-head", `<div class="panel"><h2>${esc(st.name)} <span class="muted">${esc(st.id)}</span>
      <span class="badge st-${status}" id="sd-status" data-status="${status}">${esc(term("status", status))}</span></h2>
      <div class="muted">${esc(tenant)} · ${t("overview.area")} ${esc(st.power_area || "–")} · ${t("overview.age")} <span id="sd-age"></span></div></div>`);
  const ageEl = root.querySelector("#sd-age");
  const a = age(stationAge(st));
  if (ageEl && ageEl.textContent !== a) ageEl.textContent = a;
  put("#sd-mimic", mimic(st));
  const v = name => st.values[name];
  const facts = [["tto_spill_min", "min"], ["tto_spill_conservative_min", "min"], ["inflow_m3_min", "m³/min"], ["battery_voltage_v", "V"], ["supply_voltage_v", "V"]]
    .filter(([k]) => v(k)).map(([k, u]) => {
      const x = v(k);
      return `<span>${esc(term("point", k))}</span><span class="${x.quality === "good" ? "" : "muted"}">${x.value != null ? num(x.value, 2) + " " + u : "–"}
        ${x.quality !== "good" ? `(${esc(term("quality", x.quality))})` : ""}</span>`;
    }).join("");
  put("#sd-facts", `<div class="kv">${facts}</div>`);
  const mine = sortAlarms([...state.alarms.values()].filter(a => a.station === sid));
  const box = root.querySelector("#sd-alarms");
  const sig = mine.map(a => `${a.id}:${a.state}:${a.shelve_kind}:${a.hidden}`).join(",");
  if (box.dataset.sig !== sig) { box.dataset.sig = sig; box.innerHTML = alarmRows(mine, { station: false }); }
}
