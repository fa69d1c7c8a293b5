// pumpwatch console: boot, sign-in, header, routing between the four views.
import { api, ApiError, onUnauthorized } from "./api.js";
import { chime, isMuted, setMuted, unlock } from "./audio.js";
import { watchCss } from "./css.js";
import { esc } from "./fmt.js";
import { current, pick, setLang, t } from "./i18n.js";
import * as stream from "./stream.js";
import { changed, onChange, state, topRole } from "./store.js";
import * as alarmsView from "./views/alarms.js";
import * as dispatchView from "./views/dispatch.js";
import * as overviewView from "./views/overview.js";
import * as stationView from "./views/station.js";

const $ = s => document.querySelector(s);
const views = { overview: overviewView, alarms: alarmsView, dispatch: dispatchView, station: stationView };
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
  const u = state.user;
  $("#who").textContent = u ? `${u.display_name || u.username} (${t("role." + (topRole() || "none"))})` : "";
  $("#logout").hidden = !u;
  $("#mute").textContent = isMuted() ? t("audio.off") : t("audio.on");
  $("#mute").title = isMuted() ? t("audio.unmute") : t("audio.mute");
  $("#mute").setAttribute("aria-pressed", String(isMuted()));
}

async function showLogin(message) {
  stream.stop();
  const dlg = $("#login-dialog");
  const err = $("#login-error");
  err.hidden = !message; err.textContent = message || "";
  if (!dlg.open) dlg.showModal();
}

async function login(ev) {
  ev.preventDefault();
  unlock();
  const f = new FormData($("#login-form"));
  const err = $("#login-error");
  try {
    const r = await api("/auth/login", { method: "POST", body: { username: f.get("username"), password: f.get("password") } });
    state.user = r.user;
  } catch (e) {
    err.hidden = false;
    err.textContent = e instanceof ApiError
      ? e.status === 401 ? t("auth.bad") : e.status === 429 ? t("auth.throttled", { s: e.retryAfter || "?" })
        : e.status === 423 ? t("auth.locked") : `${t("common.error")}: ${e.message}`
      : t("conn.lost_short");
    return;
  }
  $("#login-form").reset();
  $("#login-dialog").close();
  await started();
}

async function started() {
  if (state.user && state.user.locale && !localStorage.getItem("pumpwatch.lang")) await setLang(pick(state.user.locale));
  $("#lang").value = current();
  try {
    const ts = await api("/tenants");
    state.tenants = Object.fromEntries(ts.data.map(x => [x.id, x]));
  } catch { /* names only */ }
  document.body.classList.remove("booting");
  stream.start();
  route();
  renderHeader();
}

async function logout() {
  try { await api("/auth/logout", { method: "POST" }); } catch { /* gone already */ }
  state.user = null;
  state.stations.clear(); state.alarms.clear(); state.dispatch = { data: [], count: 0 };
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
    if (state.user) route();
  };
  $("#lang").addEventListener("change", e => switchLang(e.target.value));
  $("#login-lang").addEventListener("change", e => switchLang(e.target.value));
  $("#login-lang").value = current();
  $("#mute").addEventListener("click", () => { unlock(); setMuted(!isMuted()); renderHeader(); });
  $("#logout").addEventListener("click", logout);
  $("#login-form").addEventListener("submit", login);
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
    renderHeader();
    if (active) active.view.render(what);
  });
  setInterval(() => changed("tick"), 1000); // ages and countdowns run between events
  window.__pumpwatch = state; // for the browser tests and the curious
  renderHeader();
  try {
    const me = await api("/auth/me");
    state.user = me.user || me;
    await started();
  } catch (e) {
    document.body.classList.remove("booting");
    showLogin(e.status === 401 ? "" : `${t("common.error")}: ${esc(e.message)}`);
  }
}

const heard = new Set();
boot();
