// Drills: the list, starting one from a scenario file (trainers), and one drill's report: what was
// raised when, who acknowledged, dispatch decisions against the simulated spill.
import { api, ApiError } from "../api.js";
import { esc, time } from "../fmt.js";
import { t, term } from "../i18n.js";
import { refresh } from "../drill.js";
import { state } from "../store.js";

let root = null;
let current = null;

function trainerTenants() {
  const rank = ["viewer", "operator", "trainer", "engineer", "admin"];
  return (state.user && state.user.grants || []).filter(g => rank.indexOf(g.role) >= rank.indexOf("trainer")).map(g => g.tenant);
}

export function mount(el, arg) {
  root = el;
  current = arg ? Number(arg) : null;
  root.innerHTML = `<div class="panel" id="dr-body"></div>`;
  root.addEventListener("click", onClick);
  root.addEventListener("change", onFile);
  load();
}
export function unmount() { root = null; }
export function render() { /* drawn on load; the banner follows the running drill */ }

async function load() {
  if (!root) return;
  const body = root.querySelector("#dr-body");
  if (current) {
    try {
      body.innerHTML = report(await api(`/drills/${current}/report`));
    } catch (e) {
      body.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
    return;
  }
  const list = (await api("/drills")).data;
  const starter = trainerTenants().length ? `<h3>${t("drill.start_title")}</h3>
      <p class="hint">${t("drill.start_hint")}</p>
      <input type="file" id="dr-file" accept=".yaml,.yml,text/yaml">
      <textarea id="dr-text" rows="8" spellcheck="false" placeholder="name: …"></textarea>
      <p id="dr-error" class="error" hidden></p>
      <button type="button" id="dr-start" class="primary">${t("drill.start")}</button>` : "";
  body.innerHTML = `<h2>${t("drill.title")}</h2>${starter}
    <table class="stack"><thead><tr><th>#</th><th>${t("drill.name")}</th><th>${t("drill.started")}</th><th>${t("drill.outcome")}</th></tr></thead><tbody>
    ${list.map(d => `<tr data-drill="${esc(d.id)}"><td>${esc(d.id)}</td><td><a href="#/drills/${d.id}">${esc(d.title)}</a></td>
      <td>${time(d.started_at, true)} · ${esc(d.started_by || "")}</td><td>${d.running ? `<b>${t("drill.running")}</b>` : esc(t("drill.outcome." + d.outcome))}</td></tr>`).join("")}
    </tbody></table>`;
}

async function onFile(ev) {
  if (ev.target.id !== "dr-file" || !ev.target.files.length) return;
  root.querySelector("#dr-text").value = await ev.target.files[0].text();
}

async function onClick(ev) {
  if (!ev.target.closest("#dr-start")) return;
  const err = root.querySelector("#dr-error");
  try {
    const d = await api("/drills", { method: "POST", body: { scenario: root.querySelector("#dr-text").value } });
    await refresh();
    location.hash = `#/drills/${d.id}`;
  } catch (e) {
    err.hidden = false;
    err.textContent = e instanceof ApiError ? e.message : String(e);
  }
}

// seconds as m:ss, or h:mm:ss from an hour
function mmss(s) {
  if (s == null) return "–";
  const r = Math.round(s), h = Math.floor(r / 3600), m = Math.floor((r % 3600) / 60), sec = String(r % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function report(r) {
  const d = r.drill, s = r.summary;
  return `<h2>${t("drill.report_title")}: ${esc(d.title)}</h2>
    <p>${d.running ? `<b>${t("drill.running")}</b>` : esc(t("drill.outcome." + d.outcome))} · ${time(d.started_at, true)}
      → ${d.stopped_at ? time(d.stopped_at, true) : "…"} · ${esc(d.started_by || "")}</p>
    <ul class="drill-summary" id="dr-summary">
      <li>${t("drill.sum_alarms", { n: s.alarms, acked: s.acknowledged })}</li>
      <li>${t("drill.sum_ack", { t: mmss(s.median_ack_s), who: s.acked_by.join(", ") || "–" })}</li>
      <li>${t("drill.sum_dispatch", { n: s.assignments, ok: s.in_time, late: s.too_late })}</li>
      <li>${t("drill.sum_spills", { n: s.spills, none: s.spills_without_resource })}</li>
    </ul>
    <h3>${t("drill.alarms")}</h3>
    <table class="stack" id="dr-alarms"><thead><tr><th>${t("drill.after_start")}</th><th>${t("alarms.station")}</th><th>${t("alarms.alarm")}</th><th>${t("drill.acked")}</th></tr></thead><tbody>
    ${r.alarms.map(a => `<tr data-alarm="${esc(a.id)}"><td>${mmss(a.after_start_s)}</td><td>${esc(a.station_id)}</td><td>${esc(term("alarm", a.name))}</td>
      <td>${a.acked_by ? `${esc(a.acked_by)} (+${mmss(a.ack_after_s)})` : `<b>${t("drill.not_acked")}</b>`}</td></tr>`).join("")}</tbody></table>
    <h3>${t("drill.dispatch")}</h3>
    <table class="stack" id="dr-dispatch"><thead><tr><th>${t("drill.after_start")}</th><th>${t("alarms.station")}</th><th>${t("drill.resource")}</th><th>${t("drill.verdict")}</th></tr></thead><tbody>
    ${r.dispatch.map(x => `<tr class="${x.verdict === "too_late" ? "late" : ""}" data-verdict="${esc(x.verdict)}"><td>${mmss(x.after_start_s)}</td><td>${esc(x.station)}</td>
      <td>${esc(x.resource)} · ${esc(x.assigned_by || "")}</td><td>${esc(t("drill.verdict." + x.verdict))}${x.margin_s != null ? ` (${mmss(Math.abs(x.margin_s))})` : ""}</td></tr>`).join("")}</tbody></table>
    <h3>${t("drill.timeline")}</h3>
    <ol class="timeline">${r.timeline.map(e => `<li data-kind="${esc(e.kind)}">${time(e.at, true)} ${esc(e.station_id || "")} ${esc(e.label)}</li>`).join("")}</ol>`;
}
