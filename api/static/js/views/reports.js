// Reports view (運転日報・月報): pick a municipality, a day or a month, all stations or one, preview the
// figures and download them as Excel, PDF or CSV; below, the scheduled e-mails and how they went.
// Its own words live here (ja/en), so the shared translation files only gain the nav label.
import { api, ApiError } from "../api.js";
import { esc, num } from "../fmt.js";
import { current } from "../i18n.js";
import { state } from "../store.js";

const WORDS = {
  ja: {
    title: "運転日報・月報", tenant: "市町村", kind: "種類", day: "日報", month: "月報", period: "期間",
    station: "施設", all: "全施設（総括）", locale: "言語", preview: "表示", download: "ダウンロード",
    provisional: "速報値（期間途中）", no_data: "欠測", not_yet: "未到来", total: "合計", notes: "注記",
    deliveries: "定期送信", none: "なし", at: "日時", target: "対象", result: "結果", detail: "詳細",
    completeness: "取得率", loading: "作成中…", hints: "保守の目安", past_life: "耐用年数超過のポンプ",
  },
  en: {
    title: "Operation reports", tenant: "Municipality", kind: "Kind", day: "Daily", month: "Monthly",
    period: "Period", station: "Station", all: "All stations (summary)", locale: "Language", preview: "Show",
    download: "Download", provisional: "provisional (period in progress)", no_data: "no data",
    not_yet: "not yet", total: "Total", notes: "Notes", deliveries: "Scheduled e-mails", none: "none",
    at: "At", target: "Report", result: "Result", detail: "Detail", completeness: "complete",
    loading: "computing…", hints: "Maintenance hints", past_life: "Pumps past their standard life",
  },
};
const DIGITS = { h: 2, min: 1, count: 0, m3: 1, m: 2, mm: 1, kWh: 1, "mg/L": 1, pct: 1 };
const UNIT = { h: "h", min: "min", count: "", m3: "m³", m: "m", mm: "mm", kWh: "kWh", "mg/L": "mg/L", pct: "%" };

let root = null;
let seq = 0;
const w = k => (WORDS[current()] || WORDS.en)[k];

function yesterday(tz) {
  const now = new Date(Date.now() - 86400e3);
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz || "Asia/Tokyo" }).format(now); // YYYY-MM-DD
}

export function mount(el) {
  root = el;
  const tenants = Object.values(state.tenants).filter(x => !x.centre);
  const first = tenants[0] || {};
  root.innerHTML = `<div class="panel" id="rp-form"><h2>${w("title")}</h2>
    <label>${w("tenant")} <select id="rp-tenant">${tenants.map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("")}</select></label>
    <label>${w("kind")} <select id="rp-kind"><option value="day">${w("day")}</option><option value="month">${w("month")}</option></select></label>
    <label>${w("period")} <input id="rp-period" value="${esc(yesterday(first.timezone))}" size="10"></label>
    <label>${w("station")} <select id="rp-station"></select></label>
    <label>${w("locale")} <select id="rp-locale"><option value="ja">日本語</option><option value="en">English</option></select></label>
    <button id="rp-show">${w("preview")}</button>
    <span id="rp-links"></span>
    <p id="rp-error" class="error" role="alert" hidden></p></div>
    <div id="rp-out"></div>
    <div class="panel"><h3>${w("deliveries")}</h3><div id="rp-deliveries"></div></div>`;
  root.querySelector("#rp-locale").value = current() === "en" ? "en" : "ja";
  root.querySelector("#rp-tenant").addEventListener("change", () => { stations(); links(); deliveries(); });
  root.querySelector("#rp-kind").addEventListener("change", () => {
    const p = root.querySelector("#rp-period");
    p.value = root.querySelector("#rp-kind").value === "month" ? p.value.slice(0, 7) : yesterday();
    links();
  });
  for (const id of ["#rp-period", "#rp-station", "#rp-locale"]) root.querySelector(id).addEventListener("change", links);
  root.querySelector("#rp-show").addEventListener("click", show);
  stations();
  links();
  deliveries();
}
export function unmount() { root = null; }

// The report itself is fetched on demand; the live stream only fills the pickers once the tenants and
// stations have arrived (the view may be opened before they have).
export function render() {
  if (!root) return;
  const sel = root.querySelector("#rp-tenant");
  const tenants = Object.values(state.tenants).filter(x => !x.centre);
  if (sel.options.length !== tenants.length) {
    const keep = sel.value;
    sel.innerHTML = tenants.map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("");
    if (keep && tenants.some(x => x.id === keep)) sel.value = keep;
    deliveries();
  }
  const st = root.querySelector("#rp-station");
  const n = [...state.stations.values()].filter(s => s.tenant === sel.value).length;
  if (st.options.length !== n + 1) {
    const keep = st.value;
    stations();
    if (keep) st.value = keep;
  }
  links();
}

function query(format) {
  const q = new URLSearchParams({ period: root.querySelector("#rp-period").value.trim(), format,
    locale: root.querySelector("#rp-locale").value });
  const st = root.querySelector("#rp-station").value;
  if (st) q.append("station", st);
  return `/reports/${encodeURIComponent(root.querySelector("#rp-tenant").value)}?${q}`;
}

function stations() {
  const tenant = root.querySelector("#rp-tenant").value;
  const list = [...state.stations.values()].filter(s => s.tenant === tenant).sort((a, b) => a.id.localeCompare(b.id));
  root.querySelector("#rp-station").innerHTML = `<option value="">${w("all")}</option>` +
    list.map(s => `<option value="${esc(s.id)}">${esc(s.name)} (${esc(s.id)})</option>`).join("");
}

function links() {
  root.querySelector("#rp-links").innerHTML = `${w("download")}: ` + ["xlsx", "pdf", "csv"]
    .map(f => `<a class="rp-dl" data-format="${f}" href="/api/v1${esc(query(f))}" download>${f.toUpperCase()}</a>`).join(" · ");
}

function cell(v, unit) {
  return v == null ? `<span class="muted">–</span>` : esc(num(v, DIGITS[unit] ?? 1));
}

function status(s) {
  return s === "final" ? "" : w(s === "no_data" ? "no_data" : s === "not_yet" ? "not_yet" : "provisional");
}

function table(first, columns, rows) {
  return `<table class="rp-table"><thead><tr><th>${esc(first)}</th>${columns.map(c => `<th>${esc(c.label)}${UNIT[c.unit] ? ` (${UNIT[c.unit]})` : ""}</th>`).join("")}<th></th></tr></thead>
    <tbody>${rows.map(r => `<tr class="rp-${esc(r.status || "final")}"><td>${esc(r.label)}</td>${columns.map(c => `<td class="num">${cell(r.values[c.key], c.unit)}</td>`).join("")}<td>${esc(status(r.status || "final"))}</td></tr>`).join("")}</tbody></table>`;
}

async function show() {
  const out = root.querySelector("#rp-out");
  const err = root.querySelector("#rp-error");
  err.hidden = true;
  out.innerHTML = `<p class="muted">${w("loading")}</p>`;
  const mine = ++seq;
  try {
    const r = await api(query("json"));
    if (!root || mine !== seq) return;
    const head = `<h3>${esc(r.tenant_name)} · ${esc(r.period)} (${esc(r.timezone)})${r.provisional ? ` <span class="badge">${w("provisional")}</span>` : ""}</h3>`;
    if (root.querySelector("#rp-station").value && r.stations.length === 1) {
      const st = r.stations[0];
      out.innerHTML = `<div class="panel">${head}<h4>${esc(st.name)} (${esc(st.id)})</h4>
        ${table("", st.columns, [...st.rows, { ...st.total, label: w("total") }])}
        ${st.notes.length ? `<p class="muted">${w("notes")}: ${st.notes.map(esc).join(" / ")}</p>` : ""}</div>`;
      return;
    }
    const s = r.summary;
    const rows = s.rows.map(x => {
      const st = r.stations.find(y => y.id === x.station);
      return { label: `${x.name} (${x.station})`, values: x.values, status: st ? st.total.status : "final" };
    });
    out.innerHTML = `<div class="panel">${head}${table(w("station"), s.columns, rows)}
      <h4>${w("hints")}</h4>${s.hints.length ? `<ul>${s.hints.map(h => `<li>${esc(h.name)} (${esc(h.station)}): ${esc(h.key)} ${esc(num(h.value, 1))} / ${esc(num(h.median, 1))}</li>`).join("")}</ul>` : `<p class="muted">${w("none")}</p>`}
      <h4>${w("past_life")}</h4>${s.pumps_past_life.length ? `<ul>${s.pumps_past_life.map(p => `<li>${esc(p.name)} (${esc(p.station)}) #${p.pump}: ${p.install_year}</li>`).join("")}</ul>` : `<p class="muted">${w("none")}</p>`}</div>`;
  } catch (e) {
    if (!root || mine !== seq) return;
    out.innerHTML = "";
    err.hidden = false;
    err.textContent = e instanceof ApiError ? `${e.status}: ${e.message}` : String(e);
  }
}

async function deliveries() {
  const el = root.querySelector("#rp-deliveries");
  if (!root.querySelector("#rp-tenant").value) return; // the tenants have not arrived yet
  try {
    const r = await api(`/reports/${encodeURIComponent(root.querySelector("#rp-tenant").value)}/deliveries`);
    if (!root) return;
    el.innerHTML = r.deliveries.length ? `<table class="rp-table"><thead><tr><th>${w("at")}</th><th>${w("target")}</th><th>${w("result")}</th><th>${w("detail")}</th></tr></thead><tbody>
      ${r.deliveries.map(d => `<tr class="${d.result === "ok" ? "" : "rp-no_data"}"><td>${esc(new Date(d.at).toLocaleString())}</td><td>${esc(d.target)}</td><td>${esc(d.result)}</td><td>${esc(d.detail || "")}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">${w("none")}</p>`;
  } catch (e) {
    if (root) el.innerHTML = `<p class="error">${esc(e instanceof ApiError ? `${e.status}: ${e.message}` : String(e))}</p>`;
  }
}
