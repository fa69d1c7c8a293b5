// System view (the monitoring centre's staff): the system alarms, the collector shards' heartbeats, the
// historian (its lag) and its spool, the notifier's backlog, rejected input per source and reason (with
// what the bound dropped), and the newest dead letters. Refreshed every 10 s, each part rewritten only when
// it changed; dead letters are for the centre's operators only (a payload may be any municipality's).
import { api } from "../api.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";

export const wants = []; // the store's changes this view redraws on (js/app.js)
let root = null;
let timer = null;
const filters = { source: "", reason: "" };

export function mount(el) {
  root = el;
  for (const k of Object.keys(drawn)) delete drawn[k];
  root.innerHTML = `
    <div class="panel"><h2>${t("system.alarms")}</h2><div id="sy-alarms"><p class="muted">${t("common.loading")}</p></div></div>
    <div class="panel"><h2>${t("system.shards")}</h2><div id="sy-shards"></div></div>
    <div class="panel"><h2>${t("system.storage")}</h2><div id="sy-storage"></div></div>
    <div class="panel"><h2>${t("system.notifier")}</h2><div id="sy-notifier"></div></div>
    <div class="panel"><h2>${t("system.rejections")}</h2><p class="hint">${t("system.rejections_hint")}</p><div id="sy-counts"></div></div>
    <div class="panel"><h2>${t("system.dead_letters")}</h2>
      <div class="filters">
        <label>${t("system.source")}<input id="sy-f-source" type="search" value="${esc(filters.source)}"></label>
        <label>${t("system.reason")}<input id="sy-f-reason" type="search" value="${esc(filters.reason)}"></label>
      </div>
      <div id="sy-letters"></div></div>`;
  for (const k of ["source", "reason"]) {
    const input = root.querySelector(`#sy-f-${k}`);
    input.addEventListener("change", () => { filters[k] = input.value.trim(); load(); });
  }
  load();
  timer = setInterval(load, 10000);
}

export function unmount() {
  root = null;
  if (timer) clearInterval(timer);
  timer = null;
}

export function render() { /* redrawn by its own refresh, not per live event */ }

const drawn = {};
function put(id, html) {
  const el = root && root.querySelector(id);
  if (!el || drawn[id] === html) return;
  drawn[id] = html;
  el.innerHTML = html;
}

function shardsHtml(list) {
  if (!list.length) return `<p class="muted">${t("system.no_shards")}</p>`;
  if (list[0].error) return `<p class="error">${esc(list[0].error)}</p>`;
  return table(
    [t("system.shard"), t("alarms.state"), t("system.heartbeat"), t("system.host"), t("system.stations"), t("system.polls"), t("system.spool")],
    list.map(r => [
      `${esc(r.shard)}/${esc(r.shard_count)}`,
      r.alive ? `<span class="badge st-normal">${t("system.alive")}</span>` : `<span class="badge st-alarm">${t("system.dead")}</span>`,
      t("system.ago", { s: r.age_s != null ? Math.round(r.age_s) : "?" }),
      `${esc(r.host || "")} <span class="muted">pid ${esc(r.pid ?? "")}</span>`,
      esc(r.stations ?? ""),
      `${esc(r.polls ?? "")}${r.late_polls ? ` <span class="error">(${t("system.late", { n: r.late_polls })})</span>` : ""}`,
      `${esc(r.spool_rows ?? 0)} · ${esc(r.historian_state || "")}`,
    ]));
}

function notifierHtml(n) {
  return `<p><span class="badge ${n.running ? "st-normal" : "st-alarm"}">${n.running ? t("system.running") : t("system.not_running")}</span>
    ${t("system.notifier_counts", { events: n.events, queued: n.queued_items, outbox: n.outbox, escalations: n.escalations })}</p>`;
}

function table(head, rows) {
  return `<table class="stack"><thead><tr>${head.map(h => `<th>${h}</th>`).join("")}</tr></thead><tbody>
    ${rows.map(r => `<tr>${r.map((c, i) => `<td data-label="${head[i]}">${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

function alarmsHtml(list) {
  if (!list.length) return `<p class="muted">${t("system.no_alarms")}</p>`;
  return table(
    [t("alarms.priority"), t("system.since"), t("system.part"), t("alarms.station"), t("alarms.alarm")],
    list.map(a => [
      `<span class="prio prio-${esc(a.priority)}">${esc(term("priority", a.priority))}</span>`,
      time(a.since, true), esc(term("part", a.part)), esc(a.station),
      `${esc(term("alarm", a.name))}<div class="muted">${esc(a.message)}</div>`,
    ]));
}

function storageHtml(p) {
  const h = p.historian;
  const lines = [];
  if (p.historian_problems && p.historian_problems.length)
    lines.push(`<p class="error">${t("system.historian_problems")}: ${esc(p.historian_problems.join("; "))}</p>`);
  if (h) {
    lines.push(`<p>${t("system.historian")}: <b>${esc(h.state)}</b> · ${t("system.queue_age")} ${esc(h.queue_age_s)} s`
      + (h.spool ? ` · ${t("system.spool")} ${esc(h.spool.fill_pct)} % (${esc(h.spool.rows)} rows)` : "") + `</p>`);
  }
  if (p.rejections) {
    const r = p.rejections;
    lines.push(`<p>${t("system.dead_letter_store")}: ${t("system.keep", { n: r.keep_per_source })} · ${t("system.queued")} ${r.queued}
      · ${t("system.per_min")} ${r.per_min}${r.last_error ? ` · <span class="error">${esc(r.last_error)}</span>` : ""}</p>`);
  }
  return lines.join("") || `<p class="muted">${t("system.no_process")}</p>`;
}

function countsHtml(bySource) {
  const rows = [];
  for (const [source, reasons] of Object.entries(bySource)) {
    for (const [reason, c] of Object.entries(reasons)) {
      rows.push([esc(source), esc(reason), String(c.count), String(c.dropped), time(c.last_at, true)]);
    }
  }
  if (!rows.length) return `<p class="muted">${t("system.no_rejections")}</p>`;
  return table([t("system.source"), t("system.reason"), t("system.count"), t("system.dropped"), t("system.last")], rows);
}

function lettersHtml(d) {
  if (!d.data.length) return `<p class="muted">${t("system.no_dead_letters")}</p>`;
  return table(
    [t("journal.at"), t("system.source"), t("system.reason"), t("system.topic"), t("journal.detail"), t("system.payload")],
    d.data.map(x => [time(x.at, true), esc(x.source), esc(x.reason), `<code>${esc(x.topic)}</code>`, esc(x.detail),
      `<code class="payload">${esc(x.payload_excerpt)}</code> <span class="muted">(${x.payload_bytes} B)</span>`]));
}

async function load() {
  if (!root) return;
  const el = id => root && root.querySelector(id);
  try {
    const s = await api("/system/status");
    if (!root) return;
    put("#sy-alarms", alarmsHtml(s.system_alarms));
    put("#sy-shards", shardsHtml(s.shards || []));
    put("#sy-storage", storageHtml(s.process || {}));
    put("#sy-counts", countsHtml(s.rejections.by_source || {}));
  } catch (err) {
    if (root) el("#sy-alarms").textContent = `${t("common.error")}: ${err.message}`;
  }
  try {
    put("#sy-notifier", notifierHtml(await api("/notify/status")));
  } catch (err) {
    const why = { 404: t("system.no_notifier"), 403: t("system.notifier_forbidden") }[err.status];
    put("#sy-notifier", `<p class="${why ? "muted" : "error"}">${esc(why || `${t("common.error")}: ${err.message}`)}</p>`);
  }
  try {
    const q = new URLSearchParams({ limit: "100" });
    if (filters.source) q.set("source", filters.source);
    if (filters.reason) q.set("reason", filters.reason);
    const d = await api(`/system/dead-letters?${q}`);
    put("#sy-letters", lettersHtml(d));
  } catch (err) {
    if (root) el("#sy-letters").textContent = err.status === 403 ? t("system.letters_forbidden") : `${t("common.error")}: ${err.message}`;
  }
}
