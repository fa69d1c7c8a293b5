// Alarm KPIs (ISA-18.2 / EEMUA 191) of one tenant over the last day or week, as charts: alarms per 10
// minutes against the flood threshold (the server's figure), the top bad actors, the chattering alarms and
// the priority mix. SVG drawn from the numbers the API computed (alarms/kpis.py); fetched when opened,
// when the tenant or range changes, and every minute.
import { api } from "../api.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { serverNow, state } from "../store.js";

export const wants = []; // the store's changes this view redraws on (js/app.js)
let root = null;
let timer = null;
const choice = { tenant: "", days: 1 };
let lastJson = "";

export function mount(el) {
  root = el;
  lastJson = "";
  const tenants = Object.values(state.tenants);
  if (!choice.tenant || !state.tenants[choice.tenant]) choice.tenant = tenants.length ? tenants[0].id : "";
  root.innerHTML = `<div class="panel filters">
      <label>${t("alarms.tenant")}<select id="kp-tenant">${tenants.map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("")}</select></label>
      <label>${t("kpis.range")}<select id="kp-days"><option value="1">${t("kpis.day")}</option><option value="7">${t("kpis.week")}</option></select></label>
    </div>
    <div id="kp-body"><p class="muted">${t("common.loading")}</p></div>`;
  const ten = root.querySelector("#kp-tenant"), days = root.querySelector("#kp-days");
  ten.value = choice.tenant; days.value = String(choice.days);
  ten.addEventListener("change", () => { choice.tenant = ten.value; load(); });
  days.addEventListener("change", () => { choice.days = Number(days.value); load(); });
  load();
  timer = setInterval(load, 60000);
}

export function unmount() {
  root = null;
  if (timer) clearInterval(timer);
  timer = null;
}

export function render() { /* history: its own refresh */ }

// Alarms per 10 minutes: a bar per period, red above the flood threshold, the threshold as a line.
function rateChart(k) {
  const W = 900, H = 180, pad = 28;
  const n = k.per_10min.length || 1;
  const top = Math.max(k.flood_threshold * 1.5, ...k.per_10min, 1);
  const bw = (W - pad) / n;
  const y = v => H - pad - (v / top) * (H - 2 * pad);
  const bars = k.per_10min.map((v, i) => v ? `<rect class="${v > k.flood_threshold ? "flood" : "bar"}" x="${(pad + i * bw).toFixed(2)}"
    y="${y(v).toFixed(1)}" width="${Math.max(1, bw - 0.5).toFixed(2)}" height="${(H - pad - y(v)).toFixed(1)}"><title>${esc(
    time(new Date(Date.parse(k.start) + i * k.period_s * 1000).toISOString(), true))}: ${v}</title></rect>` : "").join("");
  const ty = y(k.flood_threshold).toFixed(1);
  return `<svg class="chart rate" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t("kpis.rate"))}">
    <line class="axis" x1="${pad}" y1="${H - pad}" x2="${W}" y2="${H - pad}"></line>
    <line class="threshold" x1="${pad}" y1="${ty}" x2="${W}" y2="${ty}"></line>
    <text class="lbl" x="${W - 4}" y="${Number(ty) - 4}" text-anchor="end">${esc(t("kpis.flood_line", { n: k.flood_threshold }))}</text>
    <text class="lbl" x="${pad - 4}" y="${y(top) + 10}" text-anchor="end">${Math.round(top)}</text>
    <text class="lbl" x="${pad - 4}" y="${H - pad}" text-anchor="end">0</text>
    <text class="lbl" x="${pad}" y="${H - 8}">${esc(time(k.start, true))}</text>
    <text class="lbl" x="${W}" y="${H - 8}" text-anchor="end">${esc(time(k.end, true))}</text>
    ${bars}</svg>`;
}

// Horizontal bars: station · alarm, count.
function barList(items, cls) {
  if (!items.length) return `<p class="muted">${t("kpis.none")}</p>`;
  const max = Math.max(...items.map(i => i.count));
  const W = 600, row = 22;
  return `<svg class="chart hbars ${cls}" viewBox="0 0 ${W} ${items.length * row}" role="img">
    ${items.map((b, i) => {
      const st = state.stations.get(b.station);
      const label = `${st ? st.name : b.station} · ${term("alarm", b.name)}`;
      const w = ((W - 260) * b.count) / max;
      return `<g data-station="${esc(b.station)}" data-name="${esc(b.name)}"><text class="lbl" x="250" y="${i * row + 15}" text-anchor="end">${esc(label)}</text>
        <rect class="bar" x="256" y="${i * row + 4}" width="${w.toFixed(1)}" height="${row - 8}"></rect>
        <text class="lbl" x="${(260 + w).toFixed(1)}" y="${i * row + 15}">${b.count}</text></g>`;
    }).join("")}</svg>`;
}

function mixHtml(mix) {
  const order = ["critical", "high", "medium", "low"];
  const total = Object.values(mix).reduce((a, b) => a + b, 0);
  if (!total) return `<p class="muted">${t("kpis.none")}</p>`;
  return `<div class="mix">${order.filter(p => mix[p]).map(p => `<span class="prio prio-${p}" data-css-width="${((mix[p] / total) * 100).toFixed(1)}%">
    ${esc(term("priority", p))} ${mix[p]}</span>`).join("")}</div>`;
}

function bodyHtml(k) {
  const flood = k.flood_share > 0;
  return `<div class="panel kpi-figures">
      <div class="fig"><b>${k.alarms}</b><span>${t("kpis.alarms")}</span></div>
      <div class="fig"><b>${k.per_10min_avg}</b><span>${t("kpis.avg")}</span></div>
      <div class="fig ${k.per_10min_max > k.flood_threshold ? "bad" : ""}"><b>${k.per_10min_max}</b><span>${t("kpis.max")}</span></div>
      <div class="fig ${flood ? "bad" : ""}"><b>${(k.flood_share * 100).toFixed(1)} %</b><span>${t("kpis.flood_share")}</span></div>
      <div class="fig ${k.chattering ? "bad" : ""}"><b>${k.chattering}</b><span>${t("kpis.chattering")}</span></div>
      <div class="fig ${k.stale ? "bad" : ""}"><b>${k.stale}</b><span>${t("kpis.stale")}</span></div>
    </div>
    <div class="panel"><h2>${t("kpis.rate")}</h2><p class="hint">${t("kpis.rate_hint", { n: k.flood_threshold })}</p>${rateChart(k)}</div>
    <div class="panel"><h2>${t("kpis.bad_actors")}</h2>${barList(k.top_bad_actors, "actors")}</div>
    <div class="panel"><h2>${t("kpis.chattering_list")}</h2><p class="hint">${t("kpis.chattering_hint")}</p>${barList(k.chattering_alarms, "chatter")}</div>
    <div class="panel"><h2>${t("kpis.mix")}</h2>${mixHtml(k.priority_mix)}</div>`;
}

async function load() {
  if (!root || !choice.tenant) return;
  const body = root.querySelector("#kp-body");
  const end = new Date(serverNow());
  const start = new Date(end.getTime() - choice.days * 86400000);
  const q = new URLSearchParams({ tenant: choice.tenant, start: start.toISOString(), end: end.toISOString() });
  try {
    const k = await api(`/kpis?${q}`);
    if (!root) return;
    const json = JSON.stringify({ ...k, start: null, end: null }); // redraw only when a figure changed
    if (json === lastJson) return;
    lastJson = json;
    body.innerHTML = bodyHtml(k);
  } catch (err) {
    if (root) body.innerHTML = `<p class="error">${esc(`${t("common.error")}: ${err.message}`)}</p>`;
  }
}
