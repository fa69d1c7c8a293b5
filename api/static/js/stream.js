// The live stream: one EventSource, a watchdog (no heartbeat for 12 s = lost, even if the socket looks
// open), reconnection that resumes from the last event id, and the plain "connection lost" state.
import { api } from "./api.js";
import {
  applyAlarm, applyDispatch, applySnapshot, applyStation, changed, state, syncClock,
} from "./store.js";

const WATCHDOG_MS = 12000;
let es = null;
let lastId = null;
let watchdog = null;
let retryTimer = null;
let retryMs = 1000;
let stopped = true;
const hooks = { alarm: [], lost: [], unauthorized: [] };
export function on(kind, fn) { hooks[kind].push(fn); }

function seen() {
  state.lastEventAt = performance.now();
  if (!state.connected) {
    state.connected = true;
    state.lostSince = null;
    changed("connection");
  }
  retryMs = 1000;
  clearTimeout(watchdog);
  watchdog = setTimeout(() => lost("watchdog"), WATCHDOG_MS);
}

function lost(why) {
  if (state.connected || state.lostSince === null) {
    state.connected = false;
    state.lostSince = state.lostSince ?? Date.now();
    changed("connection");
    hooks.lost.forEach(fn => fn(why));
  }
  if (why === "watchdog" && es) { es.close(); es = null; schedule(); }
}

function schedule() {
  if (stopped) return;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(async () => {
    // EventSource gives no status on failure: ask whether the session is still good before retrying.
    try {
      await api("/auth/me");
    } catch (e) {
      if (e.status === 401) { hooks.unauthorized.forEach(fn => fn()); return; }
      retryMs = Math.min(retryMs * 2, 15000); schedule(); return;
    }
    open();
  }, retryMs);
}

function handler(fn) {
  return ev => {
    if (ev.lastEventId) lastId = ev.lastEventId;
    seen();
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    fn(data);
  };
}

function open() {
  if (es) es.close();
  const url = lastId ? `/api/v1/stream?last_event_id=${encodeURIComponent(lastId)}` : "/api/v1/stream";
  es = new EventSource(url, { withCredentials: true });
  es.addEventListener("open", () => seen());
  es.addEventListener("snapshot", handler(applySnapshot));
  es.addEventListener("station", handler(applyStation));
  es.addEventListener("alarm", handler(a => { applyAlarm(a); hooks.alarm.forEach(fn => fn(a)); }));
  es.addEventListener("dispatch", handler(applyDispatch));
  es.addEventListener("heartbeat", handler(h => { syncClock(h.at); changed("clock"); }));
  es.addEventListener("error", () => {
    lost("error");
    // CONNECTING: the browser retries by itself (with Last-Event-ID). CLOSED: it gave up (401, 5xx).
    if (es && es.readyState === EventSource.CLOSED) { es = null; schedule(); }
  });
}

export function start() { stopped = false; lastId = null; open(); }

export function stop() {
  stopped = true;
  clearTimeout(watchdog); clearTimeout(retryTimer);
  if (es) { es.close(); es = null; }
  state.connected = false;
}
