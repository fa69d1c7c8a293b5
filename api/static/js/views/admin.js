// Admin (admins of a tenant): the users with a grant in the tenants they administer, their grants (change a
// role, revoke), disable / enable, unlock, end their sessions, a new user; and the audit log of those
// tenants (the last day, newest first, filtered by action). Every change is the API's (audited there).
import { api } from "../api.js";
import { esc, time } from "../fmt.js";
import { t } from "../i18n.js";
import { can, state } from "../store.js";

const ROLES = ["viewer", "operator", "engineer", "admin"];
export const wants = []; // the store's changes this view redraws on (js/app.js)
let root = null;
let timer = null;
const filters = { action: "" };
const drawn = {};

export function mount(el) {
  root = el;
  for (const k of Object.keys(drawn)) delete drawn[k];
  const mine = Object.values(state.tenants).filter(x => can("admin", x.id));
  root.innerHTML = `
    <div class="panel"><h2>${t("admin.users")}</h2><div id="ad-users"><p class="muted">${t("common.loading")}</p></div>
      <p id="ad-msg" class="hint" role="status"></p></div>
    <div class="panel"><h2>${t("admin.new_user")}</h2>
      <form id="ad-new" class="row-form">
        <label>${t("auth.username")}<input name="username" required maxlength="100" pattern="[A-Za-z0-9][A-Za-z0-9._@\\-]*"></label>
        <label>${t("admin.display_name")}<input name="display_name" maxlength="200"></label>
        <label>${t("auth.password")}<input name="password" type="password" required minlength="10" autocomplete="new-password"></label>
        <label>${t("alarms.tenant")}<select name="tenant">${mine.map(x => `<option value="${esc(x.id)}">${esc(x.name)}</option>`).join("")}</select></label>
        <label>${t("admin.role")}<select name="role">${ROLES.map(r => `<option value="${r}">${t("role." + r)}</option>`).join("")}</select></label>
        <button type="submit" class="primary">${t("admin.create")}</button>
      </form><p id="ad-new-error" class="error" role="alert" hidden></p></div>
    <div class="panel"><h2>${t("admin.audit")}</h2>
      <div class="filters"><label>${t("admin.action")}<input id="ad-action" type="search" value="${esc(filters.action)}" placeholder="user.grant"></label></div>
      <div id="ad-audit"></div></div>`;
  root.querySelector("#ad-users").addEventListener("click", onAction);
  root.querySelector("#ad-users").addEventListener("change", onGrant);
  root.querySelector("#ad-new").addEventListener("submit", createUser);
  const act = root.querySelector("#ad-action");
  act.addEventListener("change", () => { filters.action = act.value.trim(); loadAudit(); });
  load();
  timer = setInterval(load, 15000);
}

export function unmount() {
  root = null;
  if (timer) clearInterval(timer);
  timer = null;
}

export function render() { /* its own refresh */ }

function put(id, html) {
  if (!root || drawn[id] === html) return;
  drawn[id] = html;
  root.querySelector(id).innerHTML = html;
}

function tenantName(id) { return state.tenants[id] ? state.tenants[id].name : id; }

function usersHtml(list) {
  if (!list.length) return `<p class="muted">${t("admin.no_users")}</p>`;
  return `<table class="stack users-table"><thead><tr><th>${t("auth.username")}</th><th>${t("admin.grants")}</th>
    <th>${t("alarms.state")}</th><th></th></tr></thead><tbody>
    ${list.map(u => {
      const me = state.user && state.user.username === u.username;
      const grants = u.grants.map(g => can("admin", g.tenant) && !me
        ? `<span class="grant">${esc(tenantName(g.tenant))}: <select data-user="${esc(u.username)}" data-tenant="${esc(g.tenant)}" aria-label="${esc(t("admin.role"))}">
            ${ROLES.map(r => `<option value="${r}" ${r === g.role ? "selected" : ""}>${t("role." + r)}</option>`).join("")}
            <option value="">${t("admin.revoke")}</option></select></span>`
        : `<span class="grant">${esc(tenantName(g.tenant))}: ${t("role." + g.role)}</span>`).join(" ");
      const flags = [];
      if (u.disabled) flags.push(`<span class="badge st-comm_loss">${t("admin.disabled")}</span>`);
      if (u.locked_until) flags.push(`<span class="badge st-alarm">${t("admin.locked", { until: time(u.locked_until, true) })}</span>`);
      if (u.mfa_enrolled) flags.push(`<span class="muted">${t("admin.mfa")}</span>`);
      if (u.demo) flags.push(`<span class="badge demo">${t("admin.demo")}</span>`);
      const acts = me ? [] : [
        u.disabled ? `<button data-act="enable" data-user="${esc(u.username)}">${t("admin.enable")}</button>`
          : `<button data-act="disable" data-user="${esc(u.username)}">${t("admin.disable")}</button>`,
        u.locked_until ? `<button data-act="unlock" data-user="${esc(u.username)}">${t("admin.unlock")}</button>` : "",
        `<button data-act="revoke-sessions" data-user="${esc(u.username)}">${t("admin.revoke_sessions")}</button>`,
      ];
      return `<tr data-user="${esc(u.username)}" data-disabled="${u.disabled ? "1" : ""}">
        <td data-label="${t("auth.username")}"><b>${esc(u.username)}</b> <span class="muted">${esc(u.display_name || "")}</span></td>
        <td data-label="${t("admin.grants")}">${grants}</td>
        <td data-label="${t("alarms.state")}">${flags.join(" ") || t("admin.active")}</td>
        <td class="actions">${acts.join(" ")}</td></tr>`;
    }).join("")}</tbody></table>`;
}

function auditHtml(d) {
  if (!d.data.length) return `<p class="muted">${t("admin.no_audit")}</p>`;
  return `<table class="stack audit-table"><thead><tr><th>${t("journal.at")}</th><th>${t("auth.username")}</th><th>${t("alarms.tenant")}</th>
    <th>${t("admin.action")}</th><th>${t("admin.target")}</th><th>${t("admin.result")}</th><th>${t("journal.detail")}</th></tr></thead><tbody>
    ${d.data.slice().reverse().map(a => `<tr data-action="${esc(a.action)}" data-result="${esc(a.result)}">
      <td data-label="${t("journal.at")}">${time(a.at, true)}</td><td data-label="${t("auth.username")}">${esc(a.username || "")}</td>
      <td data-label="${t("alarms.tenant")}">${esc(a.tenant ? tenantName(a.tenant) : "")}</td><td data-label="${t("admin.action")}"><code>${esc(a.action)}</code></td>
      <td data-label="${t("admin.target")}">${esc(a.target || "")}</td>
      <td data-label="${t("admin.result")}" class="${a.result === "ok" ? "" : "error"}">${esc(a.result)}</td>
      <td data-label="${t("journal.detail")}">${esc([a.old_value && `${a.old_value} →`, a.new_value, a.detail].filter(Boolean).join(" "))}
        <span class="muted">${esc(a.source_ip || "")}</span></td></tr>`).join("")}</tbody></table>`;
}

async function loadUsers() {
  try { put("#ad-users", usersHtml((await api("/users")).data)); }
  catch (err) { put("#ad-users", `<p class="error">${esc(err.status === 403 ? t("admin.forbidden") : `${t("common.error")}: ${err.message}`)}</p>`); }
}

async function loadAudit() {
  const q = new URLSearchParams({ limit: "500" });
  if (filters.action) q.set("action", filters.action);
  try { put("#ad-audit", auditHtml(await api(`/audit?${q}`))); }
  catch (err) { put("#ad-audit", `<p class="error">${esc(`${t("common.error")}: ${err.message}`)}</p>`); }
}

async function load() {
  if (!root) return;
  await loadUsers();
  await loadAudit();
}

function say(text, bad = false) {
  const p = root && root.querySelector("#ad-msg");
  if (!p) return;
  p.textContent = text;
  p.className = bad ? "error" : "hint";
}

async function onAction(e) {
  const b = e.target.closest("button[data-act]");
  if (!b) return;
  try {
    const r = await api(`/users/${encodeURIComponent(b.dataset.user)}/${b.dataset.act}`, { method: "POST" });
    say(r.detail);
  } catch (err) { say(`${t("common.error")}: ${err.message}`, true); }
  await load();
}

async function onGrant(e) {
  const s = e.target.closest("select[data-user]");
  if (!s) return;
  const path = `/users/${encodeURIComponent(s.dataset.user)}/grants/${encodeURIComponent(s.dataset.tenant)}`;
  try {
    const r = s.value ? await api(path, { method: "PUT", body: { role: s.value } }) : await api(path, { method: "DELETE" });
    say(r.detail);
  } catch (err) { say(`${t("common.error")}: ${err.message}`, true); }
  await load();
}

async function createUser(ev) {
  ev.preventDefault();
  const form = root.querySelector("#ad-new");
  const f = new FormData(form);
  const err = root.querySelector("#ad-new-error");
  const body = { username: f.get("username"), password: f.get("password"), grants: [{ tenant: f.get("tenant"), role: f.get("role") }] };
  if (f.get("display_name")) body.display_name = f.get("display_name");
  try {
    await api("/users", { method: "POST", body });
    form.reset(); err.hidden = true;
    say(t("admin.created", { who: body.username }));
  } catch (e) { err.hidden = false; err.textContent = `${t("common.error")}: ${e.message}`; }
  await load();
}
