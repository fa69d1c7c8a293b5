// Alarms: the operator's list (unacknowledged first, by priority), acknowledge and shelve with a reason,
// filters, the hidden ones (shelved, suppressed, out of service) and the journal.
import { api } from "../api.js";
import { drillBadge } from "../drill.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { applyAlarm, can, state } from "../store.js";

let root = null;
let tab = "open";
const filters = { tenant: "", priority: "", state: "", text: "" };
const STATE_RANK = { unacked_active: 0, unacked_rtn: 1, acked_active: 2, normal: 3 };
const PRIO_RANK = { critical: 0, high: 1, medium: 2, low: 3 };

export function mount(el, arg) {
  root = el;
  if (arg) filters.text = arg;
  root.innerHTML = `
    <div class="tabs" id="al-tabs">
      <button data-tab="open">${t("alarms.tab_open")}</button>
      <button data-tab="hidden">${t("alarms.tab_hidden")}</button>
      <button data-tab="journal">${t("alarms.tab_journal")}</button>
    </div>
    <div class="filters panel">
      <label>${t("alarms.tenant")}<select id="f-tenant"><option value="">${t("common.all")}</option>
        ${Object.values(state.tenants).map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("")}</select></label>
      <label>${t("alarms.priority")}<select id="f-priority"><option value="">${t("common.all")}</option>
        ${Object.keys(PRIO_RANK).map(p => `<option value="${p}">${term("priority", p)}</option>`).join("")}</select></label>
      <label>${t("alarms.state")}<select id="f-state"><option value="">${t("common.all")}</option>
        ${["unacked_active", "unacked_rtn", "acked_active"].map(s => `<option value="${s}">${term("state", s)}</option>`).join("")}</select></label>
      <label>${t("alarms.search")}<input id="f-text" type="search" value="${esc(filters.text)}" placeholder="${t("alarms.search_hint")}"></label>
    </div>
    <div class="panel" id="al-body"></div>`;
  for (const k of ["tenant", "priority", "state", "text"]) {
    const el2 = root.querySelector(`#f-${k}`);
    el2.value = filters[k];
    el2.addEventListener("input", () => { filters[k] = el2.value; render(); });
  }
  root.querySelector("#al-tabs").addEventListener("click", e => {
    const b = e.target.closest("button[data-tab]");
    if (b) { tab = b.dataset.tab; render(new Set(["all"])); }
  });
  root.querySelector("#al-body").addEventListener("click", onAction);
}
export function unmount() { root = null; }

function matches(a) {
  if (filters.tenant && a.tenant !== filters.tenant) return false;
  if (filters.priority && a.priority !== filters.priority) return false;
  if (filters.state && a.state !== filters.state) return false;
  if (filters.text) {
    const st = state.stations.get(a.station);
    const hay = `${a.station} ${st ? st.name : ""} ${a.name} ${term("alarm", a.name)} ${a.message}`.toLowerCase();
    if (!hay.includes(filters.text.toLowerCase())) return false;
  }
  return true;
}

export function sortAlarms(list) {
  return list.sort((a, b) => (STATE_RANK[a.state] - STATE_RANK[b.state]) || (PRIO_RANK[a.priority] - PRIO_RANK[b.priority])
    || b.raised_at.localeCompare(a.raised_at) || b.id - a.id);
}

export function alarmRows(list, { station = true } = {}) {
  if (!list.length) return `<p class="muted">${t("alarms.none")}</p>`;
  return `<table class="stack alarms-table"><thead><tr><th>${t("alarms.priority")}</th><th>${t("alarms.raised")}</th>
    ${station ? `<th>${t("alarms.station")}</th>` : ""}<th>${t("alarms.alarm")}</th><th>${t("alarms.state")}</th><th></th></tr></thead><tbody>
    ${list.map(a => {
      const st = state.stations.get(a.station);
      const operator = can("operator", a.tenant);
      const acts = [];
      if (operator && (a.state === "unacked_active" || a.state === "unacked_rtn"))
        acts.push(`<button data-act="ack" data-id="${a.id}">${t("alarms.ack")}</button>`);
      if (operator && !a.shelve_kind && a.state !== "normal")
        acts.push(`<button data-act="shelve" data-id="${a.id}">${t("alarms.shelve")}</button>`);
      if (operator && a.shelve_kind) acts.push(`<button data-act="unshelve" data-id="${a.id}">${t("alarms.unshelve")}</button>`);
      if (operator && a.latched && !a.active) acts.push(`<button data-act="reset" data-id="${a.id}">${t("alarms.reset")}</button>`);
      acts.push(`<a class="deliveries" href="#/oncall/${a.id}">${t("alarms.deliveries")}</a>`);
      if (a.incident_id) acts.push(`<a class="incident" href="#/incidents/${a.incident_id}">${t("alarms.incident", { id: a.incident_id })}</a>`);
      const extra = [];
      if (a.acked_by) extra.push(t("alarms.acked_by", { who: a.acked_by, at: time(a.acked_at) }));
      if (a.shelve_kind) extra.push(t("alarms.shelved_info", { who: a.shelved_by || "", until: time(a.shelved_until), why: a.shelve_reason || "" }));
      if (a.suppressed_by) extra.push(t("alarms.suppressed_by", { by: term("alarm", a.suppressed_by) }));
      if (a.out_of_service) extra.push(term("status", "maintenance"));
      return `<tr class="prio-${a.priority} ${a.state === "unacked_active" ? "unacked" : ""} ${a.state === "unacked_rtn" ? "rtn" : ""}"
          data-alarm="${a.id}" data-name="${esc(a.name)}" data-station="${esc(a.station)}" data-state="${a.state}">
        <td data-label="${t("alarms.priority")}"><span class="prio prio-${a.priority}">${esc(term("priority", a.priority))}</span></td>
        <td data-label="${t("alarms.raised")}">${time(a.raised_at, true)}</td>
        ${station ? `<td data-label="${t("alarms.station")}"><a href="#/station/${encodeURIComponent(a.station)}">${esc(st ? st.name : a.station)}</a> <span class="muted">${esc(a.station)}</span></td>` : ""}
        <td data-label="${t("alarms.alarm")}">${esc(term("alarm", a.name))}${drillBadge(a)}<div class="muted">${esc(a.message)}${a.value != null ? ` (${esc(a.value)})` : ""}</div>
          ${extra.length ? `<div class="muted">${esc(extra.join(" · "))}</div>` : ""}</td>
        <td data-label="${t("alarms.state")}">${esc(term("state", a.state))}</td>
        <td class="actions">${acts.join(" ")}</td></tr>`;
    }).join("")}</tbody></table>`;
}

async function onAction(e) {
  const b = e.target.closest("button[data-act]");
  if (!b) return;
  await alarmAction(b.dataset.act, Number(b.dataset.id));
}


export async function alarmAction(act, id) {
  const a = state.alarms.get(id);
  try {
    if (act === "shelve") { openShelve(a); return; }
    const body = act === "unshelve" ? { reason: null } : { comment: null }; // the session says who
    applyAlarm(await api(`/alarms/${id}/${act}`, { method: "POST", body }));
  } catch (err) {
    alert(`${t("common.error")}: ${err.message}`);
  }
}

function openShelve(a) {
  const dlg = document.querySelector("#shelve-dialog");
  const form = document.querySelector("#shelve-form");
  const st = state.stations.get(a.station);
  document.querySelector("#shelve-what").textContent = `${st ? st.name : a.station} — ${term("alarm", a.name)}`;
  document.querySelector("#shelve-error").hidden = true;
  form.reset();
  form.onsubmit = async ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const reason = String(f.get("reason") || "").trim();
    if (!reason) return;
    try {
      applyAlarm(await api(`/alarms/${a.id}/shelve`, {
        method: "POST",
        body: { kind: f.get("kind"), minutes: Number(f.get("minutes")), reason },
      }));
      dlg.close();
    } catch (err) {
      const p = document.querySelector("#shelve-error");
      p.hidden = false; p.textContent = `${t("common.error")}: ${err.message}`;
    }
  };
  document.querySelector("#shelve-cancel").onclick = () => dlg.close();
  dlg.showModal();
}

let journalCache = { at: 0, html: "" };
async function loadJournal() {
  // no times given: the server's last 24 h on its own clock
  const q = new URLSearchParams({ limit: "2000", newest_first: "true" });
  if (filters.tenant) q.set("tenant", filters.tenant);
  const j = await api(`/alarms/journal?${q}`);
  const rows = j.data.filter(e => !filters.text ||
    `${e.station} ${e.name} ${e.detail || ""} ${e.actor || ""}`.toLowerCase().includes(filters.text.toLowerCase()));
  journalCache = {
    at: Date.now(),
    html: `<table class="stack journal-table"><thead><tr><th>${t("journal.at")}</th><th>${t("alarms.station")}</th><th>${t("alarms.alarm")}</th>
      <th>${t("journal.kind")}</th><th>${t("journal.actor")}</th><th>${t("journal.detail")}</th></tr></thead><tbody>
      ${rows.map(e => `<tr><td data-label="${t("journal.at")}">${time(e.at, true)}</td><td data-label="${t("alarms.station")}">${esc(e.station)}</td>
        <td data-label="${t("alarms.alarm")}">${esc(term("alarm", e.name))}</td><td data-label="${t("journal.kind")}">${esc(term("journal", e.kind))}</td>
        <td data-label="${t("journal.actor")}">${esc(e.actor || t("journal.system"))}</td><td data-label="${t("journal.detail")}">${esc(e.detail || "")}</td></tr>`).join("")}
      </tbody></table>${rows.length ? "" : `<p class="muted">${t("journal.none")}</p>`}`,
  };
}

export function render(what) {
  if (!root) return;
  for (const b of root.querySelectorAll("#al-tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
  const body = root.querySelector("#al-body");
  if (tab === "journal") {
    // the journal is history: fetched when the tab opens and every 10 s, not per event
    if (what && (what.has("all") || Date.now() - journalCache.at > 10000)) {
      loadJournal().then(() => { if (root && tab === "journal") body.innerHTML = journalCache.html; })
        .catch(err => { body.textContent = `${t("common.error")}: ${err.message}`; });
    }
    body.innerHTML = journalCache.html || `<p class="muted">${t("common.loading")}</p>`;
    return;
  }
  // redraw on alarm news only: a row must not be replaced under the operator's finger for a level change
  if (what && !what.has("all") && !what.has("alarms") && !what.has("connection")) return;
  const list = sortAlarms([...state.alarms.values()].filter(a => (tab === "hidden" ? a.hidden : !a.hidden) && matches(a)));
  body.innerHTML = alarmRows(list);
}
