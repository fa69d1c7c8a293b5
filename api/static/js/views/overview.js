// Overview: every station the user may see, by tenant and power area, its state at a glance.
import { age, esc, minutes, num } from "../fmt.js";
import { t, term } from "../i18n.js";
import { pointView, serverNow, state, stationAge, stationLive, stationStatus, statusRank } from "../store.js";

let root = null;

export function mount(el) {
  root = el;
  root.innerHTML = `<div class="summary" id="ov-summary"></div><div id="ov-body"></div>`;
}
export function unmount() { root = null; }

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

function tile(st) {
  const status = stationStatus(st);
  const lv = pointView(st, "wet_well_level_m");
  const a = stationAge(st);
  const stale = !stationLive(st);
  const entry = state.dispatch.data.find(e => e.station === st.id);
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
  return `<a class="tile st-${status} ${stale ? "stale" : ""}" href="#/station/${encodeURIComponent(st.id)}"
      data-station="${esc(st.id)}" data-status="${status}">
    <div class="head"><span class="name">${esc(st.name)}</span><span class="badge st-${status}">${esc(term("status", status))}</span></div>
    <div class="sid">${esc(st.id)}</div>
    <div class="row">${levelBar(st, lv)}<span class="val" title="${esc(lv ? term("quality", lv.quality) : "")}">${lvTxt}</span></div>
    <div class="row">${pumpChips(st)}${ttoTxt}</div>
    <div class="alarms">${esc(alarms)}${supTxt}</div>
    <div class="row"><span class="age ${stale ? "old" : ""}">${t("overview.age")} ${age(a)}${stale ? " · " + t("quality.stale") : ""}</span></div>
  </a>`;
}

export function render() {
  if (!root) return;
  const stations = [...state.stations.values()];
  const counts = {};
  for (const s of stations) { const k = stationStatus(s); counts[k] = (counts[k] || 0) + 1; }
  root.querySelector("#ov-summary").innerHTML =
    `<strong>${t("overview.stations", { n: stations.length })}</strong> ` +
    Object.keys(counts).sort((a, b) => statusRank(a) - statusRank(b))
      .map(k => `<span class="badge st-${k}">${esc(term("status", k))} ${counts[k]}</span>`).join(" ");
  const byTenant = new Map();
  for (const s of stations) {
    if (!byTenant.has(s.tenant)) byTenant.set(s.tenant, new Map());
    const areas = byTenant.get(s.tenant);
    const area = s.power_area || t("overview.no_area");
    if (!areas.has(area)) areas.set(area, []);
    areas.get(area).push(s);
  }
  const html = [];
  for (const [tenant, areas] of [...byTenant].sort()) {
    const name = state.tenants[tenant] ? state.tenants[tenant].name : tenant;
    html.push(`<section class="tenant" data-tenant="${esc(tenant)}"><h2>${esc(name)}</h2>`);
    for (const [area, list] of [...areas].sort()) {
      html.push(`<div class="area"><h3>${t("overview.area")}: ${esc(area)}</h3><div class="tiles">`);
      html.push(list.sort((a, b) => a.id.localeCompare(b.id)).map(tile).join(""));
      html.push(`</div></div>`);
    }
    html.push(`</section>`);
  }
  if (!stations.length) html.push(`<p class="muted">${state.connected ? t("overview.none") : t("conn.waiting")}</p>`);
  root.querySelector("#ov-body").innerHTML = html.join("");
}
