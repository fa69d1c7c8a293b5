// Mobile resources on the dispatch board (issue 18 part 5): which generator or vacuum truck is sent to a
// station and when it arrives against the spill (red when too late), sending one, moving it on.
import { api } from "./api.js";
import { esc, num } from "./fmt.js";
import { t } from "./i18n.js";
import { can } from "./store.js";

let register = [];
const chosen = {}; // station -> the resource picked in its list (the board redraws every second)
const NEXT = { dispatched: "on_site", on_site: "running", running: "returned" };

export async function load() {
  try { register = (await api("/resources")).data; } catch { register = []; }
  return register;
}

export function cell(e) {
  const sent = (e.resources || []).map(r => `<div class="res ${r.late ? "late" : "ok"}" data-assignment="${esc(r.assignment_id)}" data-resource="${esc(r.resource)}">
      <b>${esc(r.name)}</b> <span class="muted">${esc(r.capacity)}</span> · ${esc(t("res.state." + r.state))}
      ${r.state === "dispatched" ? ` · ${esc(t("res.arrives", { min: num(r.arrives_in_min, 0) }))}` : ""}
      ${r.late ? ` <b class="late-word">${esc(t("res.late"))}</b>` : ""}
      ${can("operator", e.tenant) && NEXT[r.state] ? `<button type="button" class="res-next" data-assignment="${esc(r.assignment_id)}" data-state="${NEXT[r.state]}">${esc(t("res.to." + NEXT[r.state]))}</button>` : ""}
    </div>`).join("");
  const free = register.filter(r => r.tenant === e.tenant && !r.assignment);
  const send = can("operator", e.tenant) && free.length
    ? `<span class="res-send"><select class="res-pick" data-station="${esc(e.station)}">${free.map(r =>
        `<option value="${esc(r.id)}" ${chosen[e.station] === r.id ? "selected" : ""}>${esc(r.name)} (${esc(r.capacity)})</option>`).join("")}</select>
        <button type="button" class="res-assign" data-station="${esc(e.station)}">${esc(t("res.send"))}</button></span>`
    : "";
  return sent + send;
}

export function onPick(ev) {
  const p = ev.target.closest(".res-pick");
  if (p) chosen[p.dataset.station] = p.value;
}

export async function onClick(ev, after) {
  const a = ev.target.closest(".res-assign");
  const n = ev.target.closest(".res-next");
  try {
    if (a) {
      const pick = a.parentElement.querySelector(".res-pick");
      await api(`/resources/${encodeURIComponent(pick.value)}/assign`, { method: "POST", body: { station: a.dataset.station } });
    } else if (n) {
      await api(`/assignments/${encodeURIComponent(n.dataset.assignment)}/state`, { method: "POST", body: { state: n.dataset.state } });
    } else {
      return;
    }
  } catch (err) {
    alert(err.message);
  }
  await load();
  after();
}
