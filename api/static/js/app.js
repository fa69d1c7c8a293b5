// pumpwatch console: boot, sign-in, header, the system banner, routing between the views.
import { api, ApiError, onUnauthorized } from "./api.js";
import { chime, isMuted, setMuted, unlock } from "./audio.js";
import { watchCss } from "./css.js";
import { esc } from "./fmt.js";
import { current, pick, setLang, t, term } from "./i18n.js";
import * as drill from "./drill.js";
import * as stream from "./stream.js";
import { changed, onChange, state, topRole } from "./store.js";
import * as adminView from "./views/admin.js";
import * as alarmsView from "./views/alarms.js";
import * as dispatchView from "./views/dispatch.js";
import * as drillsView from "./views/drills.js";
import * as incidentsView from "./views/incidents.js";
import * as kpisView from "./views/kpis.js";
import * as mapView from "./views/map.js";
import * as oncallView from "./views/oncall.js";
import * as overviewView from "./views/overview.js";
import * as reportsView from "./views/reports.js";
import * as stationView from "./views/station.js";
import * as systemView from "./views/system.js";

const $ = s => document.querySelector(s);
// The views by route name (#/<name>/<arg>). A new view is a module with mount(el, arg), render(what) and
// unmount(), added here and as a link in index.html's nav; render gets the set of what changed in the
// store ("all", "stations", "alarms", "dispatch", "connection", "clock", "tick") and redraws only its part.
const views = {
  overview: overviewView, map: mapView, alarms: alarmsView, incidents: incidentsView, dispatch: dispatchView,
  oncall: oncallView, kpis: kpisView, station: stationView, system: systemView, admin: adminView,
  reports: reportsView, drills: drillsView,
};
let active = null; // {name, view, arg}

function route() {
  const [, name = "overview", arg] = (location.hash || "#/overview").split("/").map(decodeURIComponent);
  const view = views[name] || overviewView;
  if (active && active.view.unmount) active.view.unmount();
  active = { name, view, arg };
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  $("#main").innerHTML = "";
  view.mount($("#main"), arg);
  view.render(new Set(["all"]));
}

function renderHeader() {
  const live = $("#live");
  live.className = "live " + (state.connected ? "ok" : "lost");
  live.textContent = state.connected ? t("conn.live") : t("conn.lost_short");
  const banner = $("#banner");
  if (!state.connected && state.lostSince !== null) {
    banner.hidden = false;
    banner.textContent = t("conn.lost", { since: new Date(state.lostSince).toLocaleTimeString() });
    document.body.classList.add("offline");
  } else {
    banner.hidden = true;
    document.body.classList.remove("offline");
  }
  const open = [...state.alarms.values()].filter(a => !a.hidden && a.state === "unacked_active").length;
  const c = $("#nav-alarm-count");
  c.hidden = open === 0; c.textContent = open;
  const d = $("#nav-dispatch-count");
  d.hidden = !state.dispatch.count; d.textContent = state.dispatch.count || "";
  for (const a of document.querySelectorAll("#nav a[data-needs=admin]")) a.hidden = topRole() !== "admin";
  const u = state.user;
  $("#who").textContent = u ? `${u.display_name || u.username} (${t("role." + (topRole() || "none"))})` : "";
  $("#logout").hidden = !u;
  const exempt = u && u.mfa && u.mfa.exempt === "demo";
  $("#demo-badge").hidden = !exempt; // said plainly: the demo's users skip the second factor
  $("#demo-badge").title = t("mfa.demo_title");
  $("#mfa-btn").hidden = !u || exempt || !(u.mfa && !u.mfa.step);
  $("#mute").textContent = isMuted() ? t("audio.off") : t("audio.on");
  $("#mute").title = isMuted() ? t("audio.unmute") : t("audio.mute");
  $("#mute").setAttribute("aria-pressed", String(isMuted()));
}

// A degraded part of pumpwatch itself (the centre's system alarms): the centre's staff read what, anyone
// else which parts (their values may lag, a phone may not ring). Asked every 10 s while signed in.
let banner = null;
let bannerTimer = null;

function renderSysBanner() {
  const el = $("#sysbanner");
  const b = banner;
  $("#nav-system").hidden = !(b && b.centre);
  const n = b && b.centre ? b.alarms.length : 0;
  $("#nav-system-count").hidden = n === 0; $("#nav-system-count").textContent = n;
  if (!b || !b.degraded) { el.hidden = true; el.innerHTML = ""; return; }
  el.hidden = false;
  el.className = "banner sys" + (b.centre ? " centre" : "");
  const parts = b.parts.map(p => term("part", p)).join(", ");
  if (b.centre) {
    el.innerHTML = `<a href="#/system">${esc(t("sys.degraded_centre", { n: b.alarms.length, parts }))}</a>
      <ul>${b.alarms.map(a => `<li data-alarm="${esc(a.name)}" data-station="${esc(a.station)}">${esc(term("alarm", a.name))}: ${esc(a.message)}</li>`).join("")}</ul>`;
  } else {
    el.textContent = t("sys.degraded", { parts });
  }
}

async function pollBanner() {
  try {
    banner = await api("/system/banner");
  } catch { /* a lost connection is told by the other banner */ }
  renderSysBanner();
}

const STEPS = ["login-form", "mfa-form", "enrol-form", "recovery-form"];

// The sign-in dialog shows one step at a time: password, second factor, enrolment, recovery codes.
function showStep(which) {
  for (const id of STEPS) $("#" + id).hidden = id !== which;
  const dlg = $("#login-dialog");
  if (!dlg.open) dlg.showModal();
  const first = $(`#${which} input`);
  if (first) first.focus();
}

async function showLogin(message) {
  stream.stop();
  drill.halt();
  if (bannerTimer) { clearInterval(bannerTimer); bannerTimer = null; }
  banner = null; renderSysBanner();
  const err = $("#login-error");
  err.hidden = !message; err.textContent = message || "";
  showStep("login-form");
}

function refusal(e, bad) {
  if (!(e instanceof ApiError)) return t("conn.lost_short");
  if (e.status === 401) return bad;
  if (e.status === 429) return t("auth.throttled", { s: e.retryAfter || "?" });
  if (e.status === 423) return t("auth.locked", { s: e.retryAfter || "?" });
  return `${t("common.error")}: ${e.message}`;
}

function showError(sel, text) {
  const err = $(sel);
  err.hidden = !text; err.textContent = text || "";
}

// After the password: what the session still owes (a code, or an enrolment), else in.
async function afterPassword(mfa) {
  if (!mfa || !mfa.step) return finishSignIn();
  if (mfa.step === "verify") { showError("#mfa-error"); return showStep("mfa-form"); }
  return startEnrol();
}

async function startEnrol() {
  showError("#enrol-error");
  try {
    const e = await api("/auth/mfa/enrol", { method: "POST" });
    $("#enrol-qr").src = `${e.qr_svg}?n=${Date.now()}`; // made by the API itself: the secret goes nowhere else
    $("#enrol-secret").textContent = e.secret.replace(/(.{4})/g, "$1 ").trim();
  } catch (e) {
    showError("#enrol-error", refusal(e, t("auth.expired")));
  }
  showStep("enrol-form");
}

async function verify(ev) {
  ev.preventDefault();
  const code = new FormData($("#mfa-form")).get("code");
  try {
    const me = await api("/auth/mfa/verify", { method: "POST", body: { code } });
    state.user = me;
  } catch (e) {
    return showError("#mfa-error", refusal(e, t("mfa.bad")));
  }
  await finishSignIn();
}

async function confirmEnrol(ev) {
  ev.preventDefault();
  const code = new FormData($("#enrol-form")).get("code");
  let r;
  try {
    r = await api("/auth/mfa/enrol/confirm", { method: "POST", body: { code } });
  } catch (e) {
    return showError("#enrol-error", refusal(e, t("mfa.bad")));
  }
  state.user = r.me;
  const list = $("#recovery-codes");
  list.innerHTML = "";
  for (const c of r.recovery_codes) {
    const li = document.createElement("li");
    li.textContent = c;
    list.appendChild(li);
  }
  showStep("recovery-form");
}

async function finishSignIn() {
  for (const id of STEPS) $("#" + id).reset();
  $("#recovery-codes").innerHTML = "";
  $("#enrol-qr").removeAttribute("src");
  $("#enrol-secret").textContent = "";
  showStep("login-form");
  $("#login-dialog").close();
  if (!document.body.classList.contains("signed-in")) await started();
  else renderHeader();
}

async function cancelStep() {
  // re-enrolling from a signed-in console: just close; in the middle of signing in: sign out
  if (state.user && state.user.mfa && !state.user.mfa.step && document.body.classList.contains("signed-in")) {
    for (const id of STEPS) $("#" + id).reset();
    showStep("login-form");
    $("#login-dialog").close();
    return;
  }
  await logout();
}

async function login(ev) {
  ev.preventDefault();
  unlock();
  const f = new FormData($("#login-form"));
  const err = $("#login-error");
  let r;
  try {
    r = await api("/auth/login", { method: "POST", body: { username: f.get("username"), password: f.get("password") } });
    state.user = { ...r.user, mfa: r.mfa };
  } catch (e) {
    err.hidden = false;
    err.textContent = refusal(e, t("auth.bad"));
    return;
  }
  $("#login-form").reset();
  await afterPassword(r.mfa);
}

async function started() {
  if (state.user && state.user.locale && !localStorage.getItem("pumpwatch.lang")) await setLang(pick(state.user.locale));
  $("#lang").value = current();
  try {
    const ts = await api("/tenants");
    state.tenants = Object.fromEntries(ts.data.map(x => [x.id, x]));
  } catch { /* names only */ }
  document.body.classList.remove("booting");
  document.body.classList.add("signed-in");
  stream.start();
  route();
  renderHeader();
  pollBanner();
  if (!bannerTimer) bannerTimer = setInterval(pollBanner, 10000);
  drill.start();
}

async function logout() {
  try { await api("/auth/logout", { method: "POST" }); } catch { /* gone already */ }
  state.user = null;
  document.body.classList.remove("signed-in");
  state.stations.clear(); state.alarms.clear(); state.dispatch = { data: [], count: 0 };
  if (active && active.view.unmount) active.view.unmount();
  active = null; // no view redraws into the emptied page after sign-out
  $("#main").innerHTML = "";
  showLogin();
}

async function boot() {
  watchCss();
  await setLang(pick());
  $("#lang").value = current();
  const switchLang = async l => {
    await setLang(l, true);
    $("#lang").value = $("#login-lang").value = l;
    renderHeader();
    renderSysBanner();
    drill.render();
    if (state.user) route();
  };
  $("#lang").addEventListener("change", e => switchLang(e.target.value));
  $("#login-lang").addEventListener("change", e => switchLang(e.target.value));
  $("#login-lang").value = current();
  $("#mute").addEventListener("click", () => { unlock(); setMuted(!isMuted()); renderHeader(); });
  $("#logout").addEventListener("click", logout);
  $("#login-form").addEventListener("submit", login);
  $("#mfa-form").addEventListener("submit", verify);
  $("#enrol-form").addEventListener("submit", confirmEnrol);
  $("#recovery-form").addEventListener("submit", e => { e.preventDefault(); finishSignIn(); });
  for (const b of document.querySelectorAll(".mfa-cancel")) b.addEventListener("click", cancelStep);
  $("#mfa-btn").addEventListener("click", startEnrol);
  $("#login-dialog").addEventListener("cancel", e => e.preventDefault()); // no way around signing in
  document.addEventListener("click", unlock, { once: true });
  window.addEventListener("hashchange", route);
  onUnauthorized(() => { state.user = null; showLogin(t("auth.expired")); });
  stream.on("unauthorized", () => { state.user = null; showLogin(t("auth.expired")); });
  stream.on("alarm", a => {
    // a new critical alarm sounds once: raised (or raised again) and not hidden
    if (a.priority === "critical" && a.state === "unacked_active" && !a.hidden && !heard.has(`${a.id}:${a.raise_count}`)) {
      heard.add(`${a.id}:${a.raise_count}`);
      chime();
    }
  });
  onChange(what => {
    if (what.has("tick") && what.size === 1) return; // the header shows no clock
    renderHeader();
  });
  // The active view hears only the kinds of change it subscribes to (its `wants`; every kind if it
  // names none), with the ids of the stations that changed.
  onChange((what, ids) => {
    if (!active) return;
    const wants = active.view.wants;
    if (wants && !what.has("all") && !wants.some(k => what.has(k))) return;
    const t0 = performance.now();
    active.view.render(what, ids);
    renders.push(performance.now() - t0); // the last 600 render times (ms): the scale test reads them
    if (renders.length > 600) renders.shift();
  });
  setInterval(() => changed("tick"), 1000); // ages and countdowns run between events
  window.__pumpwatch = state; // for the browser tests and the curious
  window.__pumpwatchRenders = renders;
  renderHeader();
  try {
    const me = await api("/auth/me");
    state.user = me.user || me;
    if (state.user.mfa && state.user.mfa.step) {
      document.body.classList.remove("booting");
      await afterPassword(state.user.mfa); // a reload between the two steps
    } else {
      await started();
    }
  } catch (e) {
    document.body.classList.remove("booting");
    showLogin(e.status === 401 ? "" : `${t("common.error")}: ${esc(e.message)}`);
  }
}

const heard = new Set();
const renders = [];
boot();
