// Incidents: the list (open ones, or all), and one incident (#/incidents/<id>) with its phases (report →
// first response → restoration → cause → prevention → closed), its member stations on a timeline, its
// notes, and a note that may move it to a later phase (operators of its tenant; the API refuses going back).
// History, not live values: fetched when opened and every 15 s, each part redrawn only when it changed.
import { api } from "../api.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { can, serverNow, state } from "../store.js";

export const PHASES = ["report", "first_response", "restoration", "cause", "prevention", "closed"];
export const wants = []; // the store's changes this view redraws on (js/app.js)
let root = null;
let timer = null;
let showClosed = false;
let current = null; // incident id in detail, or null: the list
const drawn = {};   // part -> the HTML last written (a part is rewritten only when its HTML changed)

export function mount(el, arg) {
  root = el;
  current = arg ? Number(arg) : null;
  for (const k of Object.keys(drawn)) delete drawn[k];
  if (current) {
    root.innerHTML = `<p><a href="#/incidents">← ${t("incidents.back")}</a></p>
      <div class="panel" id="in-head"><p class="muted">${t("common.loading")}</p></div>
      <div class="panel"><h2>${t("incidents.phases")}</h2><ol class="phases" id="in-phases"></ol></div>
      <div class="panel"><h2>${t("incidents.timeline")}</h2><div id="in-timeline"></div></div>
      <div class="panel"><h2>${t("incidents.notes")}</h2><div id="in-notes"></div>
        <form id="in-form" class="note-form" hidden>
          <label>${t("incidents.note")}<textarea name="text" required maxlength="5000" rows="3"></textarea></label>
          <label>${t("incidents.move")}<select name="phase"></select></label>
          <p id="in-error" class="error" role="alert" hidden></p>
          <button type="submit" class="primary">${t("incidents.add")}</button>
        </form></div>`;
    root.querySelector("#in-form").addEventListener("submit", submit);
  } else {
    root.innerHTML = `<div class="panel"><h2>${t("incidents.title")}</h2>
      <label class="inline"><input type="checkbox" id="in-closed" ${showClosed ? "checked" : ""}> ${t("incidents.show_closed")}</label>
      <div id="in-list"><p class="muted">${t("common.loading")}</p></div></div>`;
    root.querySelector("#in-closed").addEventListener("change", e => { showClosed = e.target.checked; load(); });
  }
  load();
  timer = setInterval(load, 15000);
}

export function unmount() {
  root = null; current = null;
  if (timer) clearInterval(timer);
  timer = null;
}

export function render() { /* history: redrawn by its own refresh */ }

function put(id, html) {
  if (!root || drawn[id] === html) return;
  drawn[id] = html;
  root.querySelector(id).innerHTML = html;
}

function tenantName(id) { return state.tenants[id] ? state.tenants[id].name : id; }
function stationName(id) { const s = state.stations.get(id); return s ? s.name : id; }

export function phaseChip(p) { return `<span class="phase ph-${esc(p)}">${esc(term("phase", p))}</span>`; }

function listHtml(list) {
  if (!list.length) return `<p class="muted">${t(showClosed ? "incidents.none_at_all" : "incidents.none")}</p>`;
  return `<table class="stack incidents-table"><thead><tr><th>#</th><th>${t("incidents.what")}</th><th>${t("alarms.tenant")}</th>
    <th>${t("incidents.phase")}</th><th>${t("incidents.opened")}</th><th>${t("incidents.stations")}</th></tr></thead><tbody>
    ${list.map(i => `<tr data-incident="${i.id}" data-phase="${esc(i.phase)}">
      <td data-label="#">${i.id}</td>
      <td data-label="${t("incidents.what")}"><a href="#/incidents/${i.id}"><b>${esc(i.title)}</b></a>
        <div class="muted">${esc(term("incident_kind", i.kind))}${i.power_area ? " · " + esc(i.power_area) : ""}</div></td>
      <td data-label="${t("alarms.tenant")}">${esc(tenantName(i.tenant))}</td>
      <td data-label="${t("incidents.phase")}">${phaseChip(i.phase)}</td>
      <td data-label="${t("incidents.opened")}">${time(i.opened_at, true)}</td>
      <td data-label="${t("incidents.stations")}">${t("incidents.out_of", { out: i.stations_out, n: i.station_count })}</td></tr>`).join("")}
    </tbody></table>`;
}

// When each phase was reached: the incident's own times, else the first note written in that phase.
function phaseTimes(inc) {
  const at = { report: inc.opened_at, first_response: inc.first_response_at, restoration: null, cause: null,
    prevention: null, closed: inc.closed_at };
  for (const n of inc.notes || []) if (!at[n.phase]) at[n.phase] = n.at;
  if (!at.restoration && inc.first_response_at && PHASES.indexOf(inc.phase) >= 2) at.restoration = inc.first_response_at;
  return at;
}

function phasesHtml(inc) {
  const at = phaseTimes(inc);
  const cur = PHASES.indexOf(inc.phase);
  return PHASES.map((p, i) => `<li class="${i < cur ? "done" : i === cur ? "now" : "todo"}" data-phase="${p}">
    <b>${esc(term("phase", p))}</b><span class="muted">${i <= cur && at[p] ? time(at[p], true) : ""}</span></li>`).join("");
}

function timelineHtml(inc) {
  const st = inc.stations || [];
  if (!st.length) return `<p class="muted">${t("incidents.no_stations")}</p>`;
  const t0 = Date.parse(inc.opened_at);
  const end = inc.closed_at ? Date.parse(inc.closed_at) : serverNow();
  const t1 = Math.max(end, ...st.map(s => s.restored_at ? Date.parse(s.restored_at) : end), t0 + 60000);
  const pct = v => `${(((v - t0) / (t1 - t0)) * 100).toFixed(2)}%`;
  const rows = st.map(s => {
    const a = Date.parse(s.joined_at), b = s.restored_at ? Date.parse(s.restored_at) : t1;
    return `<div class="tl-row" data-station="${esc(s.station_id)}" data-restored="${s.restored_at ? "1" : ""}">
      <a class="tl-name" href="#/station/${encodeURIComponent(s.station_id)}">${esc(stationName(s.station_id))}
        <span class="muted">${esc(s.station_id)}</span></a>
      <span class="tl-track"><span class="tl-bar ${s.restored_at ? "restored" : "out"}" data-css-left="${pct(a)}"
        data-css-width="${(((b - a) / (t1 - t0)) * 100).toFixed(2)}%"
        title="${esc(time(s.joined_at, true))} → ${esc(s.restored_at ? time(s.restored_at, true) : t("incidents.still_out"))}"></span></span>
      <span class="tl-when muted">${time(s.joined_at)} → ${s.restored_at ? time(s.restored_at) : t("incidents.still_out")}</span></div>`;
  });
  return `<div class="tl-axis"><span>${time(new Date(t0).toISOString(), true)}</span><span>${time(new Date(t1).toISOString(), true)}</span></div>
    ${rows.join("")}`;
}

function notesHtml(inc) {
  const notes = inc.notes || [];
  if (!notes.length) return `<p class="muted">${t("incidents.no_notes")}</p>`;
  return `<ol class="notes">${notes.map(n => `<li>${phaseChip(n.phase)} <span class="muted">${time(n.at, true)} ·
    ${esc(n.actor || t("journal.system"))}</span><div>${esc(n.text)}</div></li>`).join("")}</ol>`;
}

function headHtml(inc) {
  // a drill's incident (issue 18 part 2) says so here, once the API marks it: `drill: true`
  const drill = inc.drill ? `<span class="badge drill">${t("drill.badge")}</span> ` : "";
  return `<h2>${drill}#${inc.id} ${esc(inc.title)} ${phaseChip(inc.phase)}</h2>
    <p class="muted">${esc(term("incident_kind", inc.kind))} · ${esc(tenantName(inc.tenant))}${inc.power_area ? " · " + t("overview.area") + ": " + esc(inc.power_area) : ""}
    · ${t("incidents.out_of", { out: inc.stations_out, n: inc.station_count })}
    · <a href="#/map/${inc.id}" id="in-on-map">${t("incidents.on_map")}</a></p>`;
}

function formFor(inc) {
  const form = root.querySelector("#in-form");
  const may = can("operator", inc.tenant) && inc.phase !== "closed";
  form.hidden = !may;
  if (!may) return;
  const sel = form.querySelector("select[name=phase]");
  const cur = PHASES.indexOf(inc.phase);
  const want = PHASES.slice(cur).map(p => `${p}:${p === inc.phase ? t("incidents.stay") : term("phase", p)}`).join("|");
  if (sel.dataset.options !== want) { // only when the choices changed: never under the operator's finger
    sel.dataset.options = want;
    sel.innerHTML = PHASES.slice(cur).map(p => `<option value="${p === inc.phase ? "" : p}">${esc(p === inc.phase
      ? t("incidents.stay") : term("phase", p))}</option>`).join("");
  }
}

async function load() {
  if (!root) return;
  try {
    if (current) {
      const inc = await api(`/incidents/${current}`);
      if (!root) return;
      put("#in-head", headHtml(inc));
      put("#in-phases", phasesHtml(inc));
      put("#in-timeline", timelineHtml(inc));
      put("#in-notes", notesHtml(inc));
      formFor(inc);
    } else {
      const q = new URLSearchParams({ closed: String(showClosed) });
      const d = await api(`/incidents?${q}`);
      put("#in-list", listHtml(d.data));
    }
  } catch (err) {
    if (root) put(current ? "#in-head" : "#in-list", `<p class="error">${esc(err.status === 404 ? t("incidents.not_found") : `${t("common.error")}: ${err.message}`)}</p>`);
  }
}

async function submit(ev) {
  ev.preventDefault();
  const form = root.querySelector("#in-form");
  const f = new FormData(form);
  const body = { text: String(f.get("text") || "").trim() };
  if (!body.text) return;
  if (f.get("phase")) body.phase = f.get("phase");
  const err = root.querySelector("#in-error");
  try {
    await api(`/incidents/${current}/notes`, { method: "POST", body });
    form.reset();
    err.hidden = true;
    await load();
  } catch (e) {
    err.hidden = false; err.textContent = `${t("common.error")}: ${e.message}`;
  }
}
