// On-call: who is on call now and who next (from when) in each rotation of the user's tenants, the
// escalations under way, and for one alarm (#/oncall/<alarm id>) every message sent about it (channel,
// recipient, state, attempts, errors) and who acknowledged it. Fetched every 10 s; a part is rewritten
// only when its content changed.
import { api } from "../api.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { state } from "../store.js";

export const wants = ["alarms"]; // the store's changes this view redraws on (js/app.js)
let root = null;
let timer = null;
let alarmId = null;
const drawn = {};

export function mount(el, arg) {
  root = el;
  alarmId = arg ? Number(arg) : null;
  for (const k of Object.keys(drawn)) delete drawn[k];
  root.innerHTML = `
    <div class="panel"><h2>${t("oncall.title")}</h2><div id="oc-now"><p class="muted">${t("common.loading")}</p></div></div>
    <div class="panel"><h2>${t("oncall.alarm")}</h2>
      <label>${t("alarms.alarm")} <select id="oc-alarm"><option value="">–</option></select></label>
      <div id="oc-deliveries"></div></div>
    <div class="panel"><h2>${t("oncall.escalations")}</h2><div id="oc-esc"></div></div>`;
  const sel = root.querySelector("#oc-alarm");
  sel.addEventListener("change", () => { location.hash = sel.value ? `#/oncall/${sel.value}` : "#/oncall"; });
  load();
  timer = setInterval(load, 10000);
}

export function unmount() {
  root = null;
  if (timer) clearInterval(timer);
  timer = null;
}

function put(id, html) {
  if (!root || drawn[id] === html) return;
  drawn[id] = html;
  root.querySelector(id).innerHTML = html;
}

// The alarm chooser follows the open alarms (live), rewritten only when the set of them changed.
export function render(what) {
  if (!root || (what && !what.has("all") && !what.has("alarms"))) return;
  const sel = root.querySelector("#oc-alarm");
  const list = [...state.alarms.values()].sort((a, b) => b.raised_at.localeCompare(a.raised_at));
  if (alarmId && !state.alarms.has(alarmId)) list.unshift({ id: alarmId, station: "", name: "", closed: true });
  const key = list.map(a => a.id).join(",");
  if (sel.dataset.key === key) return;
  sel.dataset.key = key;
  sel.innerHTML = `<option value="">–</option>` + list.map(a => {
    const st = state.stations.get(a.station);
    const label = a.closed ? `#${a.id}` : `#${a.id} ${st ? st.name : a.station} — ${term("alarm", a.name)}`;
    return `<option value="${a.id}">${esc(label)}</option>`;
  }).join("");
  sel.value = alarmId ? String(alarmId) : "";
}

function tenantName(id) { return state.tenants[id] ? state.tenants[id].name : id; }

function nowHtml(d) {
  if (!d.tenants.length) return `<p class="muted">${t("oncall.none")}</p>`;
  const rows = [];
  for (const x of d.tenants) {
    if (!x.rotations.length) {
      rows.push(`<tr data-tenant="${esc(x.tenant)}"><td data-label="${t("alarms.tenant")}">${esc(tenantName(x.tenant))}</td>
        <td colspan="3" class="muted">${t("oncall.no_rotation")}</td></tr>`);
      continue;
    }
    for (const r of x.rotations) {
      rows.push(`<tr data-tenant="${esc(x.tenant)}" data-rotation="${esc(r.rotation)}">
        <td data-label="${t("alarms.tenant")}">${esc(tenantName(x.tenant))}</td>
        <td data-label="${t("oncall.rotation")}">${esc(r.rotation)}</td>
        <td data-label="${t("oncall.now")}" class="oc-now"><b>${esc(r.name)}</b> <span class="muted">${esc(r.person)}</span></td>
        <td data-label="${t("oncall.next")}" class="oc-next">${r.next_person
          ? `${esc(r.next_name)} <span class="muted">${t("oncall.from", { at: time(r.next_at, true) })}</span>`
          : `<span class="muted">${t("oncall.no_next")}</span>`}</td></tr>`);
    }
  }
  return `<table class="stack oncall-table"><thead><tr><th>${t("alarms.tenant")}</th><th>${t("oncall.rotation")}</th>
    <th>${t("oncall.now")}</th><th>${t("oncall.next")}</th></tr></thead><tbody>${rows.join("")}</tbody></table>
    <p class="hint">${t("oncall.at", { at: time(d.at, true) })}</p>`;
}

function escalationsHtml(list) {
  if (!list.length) return `<p class="muted">${t("oncall.no_escalations")}</p>`;
  return `<table class="stack"><thead><tr><th>${t("alarms.alarm")}</th><th>${t("oncall.policy")}</th><th>${t("oncall.step")}</th>
    <th>${t("alarms.state")}</th><th>${t("oncall.next_step")}</th></tr></thead><tbody>
    ${list.map(e => `<tr data-escalation="${e.id}"><td data-label="${t("alarms.alarm")}"><a href="#/oncall/${e.alarm_id}">#${e.alarm_id}</a>
      ${esc(e.station)} — ${esc(term("alarm", e.alarm))} <span class="prio prio-${esc(e.priority)}">${esc(term("priority", e.priority))}</span></td>
      <td data-label="${t("oncall.policy")}">${esc(e.policy)}</td><td data-label="${t("oncall.step")}">${e.step + 1}${e.loop ? ` (×${e.loop + 1})` : ""}</td>
      <td data-label="${t("alarms.state")}">${esc(term("escalation", e.state))}${e.acked_by ? ` · ${esc(t("alarms.acked_by", { who: e.acked_by, at: time(e.acked_at) }))}` : ""}</td>
      <td data-label="${t("oncall.next_step")}">${e.next_at ? time(e.next_at, true) : "–"}</td></tr>`).join("")}</tbody></table>`;
}

function deliveriesHtml(d) {
  const e = d.escalation;
  const head = e
    ? `<p>${t("oncall.policy")}: <b>${esc(e.policy)}</b> · ${t("oncall.step")} ${e.step + 1} · ${esc(term("escalation", e.state))}
       ${e.acked_by ? ` · <b class="oc-acked">${esc(t("alarms.acked_by", { who: e.acked_by, at: time(e.acked_at, true) }))}</b>` : ""}</p>`
    : `<p class="muted">${t("oncall.no_escalation")}</p>`;
  if (!d.deliveries.length) return head + `<p class="muted">${t("oncall.no_deliveries")}</p>`;
  return head + `<table class="stack deliveries-table"><thead><tr><th>${t("oncall.created")}</th><th>${t("oncall.person")}</th>
    <th>${t("oncall.channel")}</th><th>${t("alarms.state")}</th><th>${t("oncall.sent")}</th><th>${t("oncall.attempts")}</th></tr></thead><tbody>
    ${d.deliveries.map(x => `<tr data-delivery="${x.id}" data-state="${esc(x.state)}">
      <td data-label="${t("oncall.created")}">${time(x.created_at, true)}</td>
      <td data-label="${t("oncall.person")}">${esc(x.person)}</td>
      <td data-label="${t("oncall.channel")}">${esc(x.channel)} <span class="muted">${esc(x.recipient)}</span>${x.fallback_of ? ` <span class="muted">(${t("oncall.fallback")})</span>` : ""}</td>
      <td data-label="${t("alarms.state")}"><span class="dl dl-${esc(x.state)}">${esc(term("delivery", x.state))}</span>${x.last_error ? `<div class="error">${esc(x.last_error)}</div>` : ""}</td>
      <td data-label="${t("oncall.sent")}">${time(x.sent_at, true)}</td>
      <td data-label="${t("oncall.attempts")}">${x.attempts}</td></tr>`).join("")}</tbody></table>`;
}

async function load() {
  if (!root) return;
  const fail = (id, err) => put(id, `<p class="error">${esc(`${t("common.error")}: ${err.message}`)}</p>`);
  try { put("#oc-now", nowHtml(await api("/notify/oncall"))); } catch (err) { fail("#oc-now", err); }
  try {
    const d = await api("/notify/escalations?limit=100");
    put("#oc-esc", escalationsHtml(d.escalations.filter(e => e.state === "active" || e.state === "muted")));
  } catch (err) { fail("#oc-esc", err); }
  if (alarmId) {
    try { put("#oc-deliveries", deliveriesHtml(await api(`/notify/alarms/${alarmId}`))); } catch (err) { fail("#oc-deliveries", err); }
  } else {
    put("#oc-deliveries", `<p class="muted">${t("oncall.pick_alarm")}</p>`);
  }
}
