// Drills (issue 18): the DRILL banner every view shows while a drill of one of your tenants runs, the
// trainer's stop button on it, and the mark on drill alarms. Asked every 5 s while signed in.
import { api } from "./api.js";
import { esc, time } from "./fmt.js";
import { t } from "./i18n.js";
import { can, state } from "./store.js";

export const drills = { running: [] };
let timer = null;

export function drillBadge(a) {
  return a && a.drill_id != null ? ` <span class="badge drill" data-drill="${esc(a.drill_id)}">${esc(t("drill.badge"))}</span>` : "";
}

export function render() {
  const el = document.querySelector("#drillbanner");
  if (!el) return;
  const list = state.user ? drills.running : [];
  document.body.classList.toggle("drilling", list.length > 0);
  if (!list.length) { el.hidden = true; el.innerHTML = ""; return; }
  el.hidden = false;
  el.innerHTML = list.map(d => `<div class="drill-line" data-drill="${esc(d.id)}">
      <b>${esc(t("drill.banner"))}</b> ${esc(d.title)} · ${esc((state.tenants[d.tenant] || {}).name || d.tenant)}
      · ${esc(t("drill.until", { at: time(d.ends_at) }))}
      <a href="#/drills/${encodeURIComponent(d.id)}">${esc(t("drill.report"))}</a>
      ${can("trainer", d.tenant) ? `<button type="button" class="drill-stop" data-drill="${esc(d.id)}">${esc(t("drill.stop"))}</button>` : ""}
    </div>`).join("");
}

export async function refresh() {
  try {
    drills.running = (await api("/drills?running=true")).data;
  } catch { /* the connection banner says it */ }
  render();
  document.dispatchEvent(new CustomEvent("pumpwatch:drills"));
}

export async function stop(id) {
  if (!confirm(t("drill.stop_confirm"))) return;
  await api(`/drills/${encodeURIComponent(id)}/stop`, { method: "POST" });
  await refresh();
}

export function start() {
  if (timer) return;
  const el = document.querySelector("#drillbanner");
  el.addEventListener("click", e => {
    const b = e.target.closest(".drill-stop");
    if (b) stop(b.dataset.drill).catch(err => alert(err.message));
  });
  refresh();
  timer = setInterval(refresh, 5000);
}

export function halt() {
  if (timer) { clearInterval(timer); timer = null; }
  drills.running = [];
  render();
}
