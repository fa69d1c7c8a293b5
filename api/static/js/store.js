// The console's state, fed by the live stream: stations, open alarms and the dispatch board by id, and the
// server's clock (ages and countdowns follow it, also when the simulation runs faster than real time).
export const state = {
  user: null,          // {username, display_name, locale, grants: [{tenant, role}]}; null: signed out
  tenants: {},         // id -> {id, name, timezone}
  stations: new Map(), // id -> station
  alarms: new Map(),   // id -> alarm (open ones, hidden included)
  dispatch: { data: [], count: 0, at: null },
  statusLadder: [],    // station statuses in the server's ladder order (alarms/status.py), from the snapshot
  connected: false,
  lastEventAt: null,   // performance.now() of the last event from the server
  lostSince: null,
};

const listeners = new Set();
// fn(what, stations): `what` the kinds of change since the last frame ("all", "stations", "alarms",
// "dispatch", "connection", "clock", "tick"), `stations` the ids of the stations that changed.
export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
// A view's subscription: fn runs only for the kinds it names (and "all"), with the changed station ids.
export function subscribe(kinds, fn) {
  const wanted = new Set([...kinds, "all"]);
  return onChange((what, ids) => { for (const k of what) if (wanted.has(k)) { fn(what, ids); return; } });
}
let pending = null;
let dirty = new Set(); // station ids changed since the last frame
// Many events arrive in bursts: views redraw at most once per animation frame.
export function changed(what) {
  if (pending) { pending.add(what); return; }
  pending = new Set([what]);
  requestAnimationFrame(() => {
    const p = pending, d = dirty;
    pending = null; dirty = new Set();
    listeners.forEach(fn => fn(p, d));
  });
}

// Server clock: the last server time seen plus local time since, at the rate the server clock runs.
const clock = { server: null, local: 0, rate: 1 };
export function syncClock(iso) {
  const s = Date.parse(iso);
  if (isNaN(s)) return;
  const l = performance.now();
  if (clock.server !== null) {
    const dl = l - clock.local, ds = s - clock.server;
    if (dl > 3000 && ds >= 0) clock.rate = Math.min(1000, ds / dl) * 0.5 + clock.rate * 0.5;
  }
  clock.server = s; clock.local = l;
}
export function serverNow() {
  if (clock.server === null) return Date.now();
  return clock.server + (performance.now() - clock.local) * clock.rate;
}

// Roles, lowest first (CONTRACT: viewer < operator < trainer < engineer < admin).
const ROLES = ["viewer", "operator", "trainer", "engineer", "admin"];
export function can(role, tenant) {
  const u = state.user;
  if (!u) return false;
  return (u.grants || []).some(g => g.tenant === tenant && ROLES.indexOf(g.role) >= ROLES.indexOf(role));
}
export function topRole() {
  const u = state.user;
  if (!u || !u.grants || !u.grants.length) return null;
  return u.grants.map(g => g.role).sort((a, b) => ROLES.indexOf(b) - ROLES.indexOf(a))[0];
}

// A station's value as the screen may show it: stale when not good, too old, or the connection is lost.
export function pointView(st, name) {
  const v = st && st.values ? st.values[name] : undefined;
  if (!v) return null;
  const age = v.observed_at ? (serverNow() - Date.parse(v.observed_at)) / 1000 : null;
  const tooOld = age === null || (st.stale_after_s != null && age > st.stale_after_s);
  const live = v.quality === "good" && !tooOld && state.connected;
  return { ...v, age, live, quality: v.quality === "good" && tooOld ? "stale" : v.quality };
}

// How old the station's newest reading is, counted on from the server's `heard_at` between updates.
export function stationAge(st) {
  return st.heard_at ? (serverNow() - Date.parse(st.heard_at)) / 1000 : null;
}

// The status word and colour are the server's (one definition: alarms/status.py; the stream sends a
// station again within 5 s when its data ages into stale). The page decides one thing only: while its own
// connection is lost nothing on it is live, whatever the last word was.
export function stationStatus(st) {
  return state.connected ? st.status : "stale";
}

// Anything of the station current, as the server said (its values grey themselves as they age, pointView).
export function stationLive(st) {
  return state.connected && st.live === true;
}

// The server's ladder (the first word that holds wins): summaries follow its order; a word not in it goes last.
export function statusRank(status) {
  const i = state.statusLadder.indexOf(status);
  return i < 0 ? state.statusLadder.length : i;
}

export function applySnapshot(s) {
  syncClock(s.at);
  state.stations = new Map(s.stations.map(x => [x.id, x]));
  state.alarms = new Map(s.alarms.map(a => [a.id, a]));
  state.dispatch = s.dispatch;
  if (Array.isArray(s.status_ladder)) state.statusLadder = s.status_ladder;
  changed("all");
}

export function applyAlarm(a) {
  const open = a.state !== "normal";
  if (open) state.alarms.set(a.id, a); else state.alarms.delete(a.id);
  changed("alarms");
}

export function applyStation(s) { state.stations.set(s.id, s); dirty.add(s.id); changed("stations"); }
export function applyDispatch(d) { syncClock(d.at); state.dispatch = d; changed("dispatch"); }
