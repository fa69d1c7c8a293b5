// Network map: every located station as a marker coloured by the server's status word (the CSS maps the
// word to a colour; no status rule lives here), with its level and time to overflow; a line from each
// station to where it discharges; the power areas shaded; an incident's member stations highlighted
// (#/map/<incident id>). Leaflet (api/static/vendor/leaflet-1.9.4, BSD-2-Clause) from our own assets; tiles
// only when the server names a tile source (PUMPWATCH_MAP_TILES_URL), else a schematic on a plain ground.
// Markers are made once per station and updated in place, only when what they show changed.
import * as L from "../../vendor/leaflet-1.9.4/leaflet-src.esm.js";
import { api } from "../api.js";
import { esc, minutes, num } from "../fmt.js";
import { t, term } from "../i18n.js";
import { pointView, serverNow, state, stationStatus } from "../store.js";

export const wants = ["stations", "dispatch", "connection", "tick"]; // the store's changes this view redraws on (js/app.js)
let root = null;
let map = null;
let markers = new Map(); // station id -> {marker, el, key}
let links = null;        // layer of discharges_to lines
let areas = null;        // layer of power-area shades
let fitted = false;
let highlight = { id: null, stations: new Set(), title: "" };
let layoutKey = "";      // which stations/links/areas are drawn: redrawn only when that changes

export function mount(el, arg) {
  root = el;
  root.innerHTML = `<div class="map-bar panel">
      <label>${t("map.incident")} <select id="mp-incident"><option value="">${t("map.no_incident")}</option></select></label>
      <span id="mp-highlight" class="muted"></span>
      <span class="legend">${["normal", "alarm", "power_failure", "comm_loss", "stale", "maintenance"]
        .map(s => `<span class="badge st-${s}">${esc(term("status", s))}</span>`).join(" ")}
        <span class="lg-link">${t("map.link")}</span> <span class="lg-area">${t("map.area")}</span></span>
      <span id="mp-tiles" class="muted"></span>
    </div>
    <div id="mp-canvas" class="map-canvas" role="application" aria-label="${esc(t("nav.map"))}"></div>`;
  map = L.map(root.querySelector("#mp-canvas"), { zoomSnap: 0.25, preferCanvas: false, attributionControl: true });
  map.attributionControl.setPrefix(`<a href="/static/vendor/leaflet-1.9.4/LICENSE">Leaflet</a>`);
  areas = L.layerGroup().addTo(map);
  links = L.layerGroup().addTo(map);
  markers = new Map(); fitted = false; layoutKey = "";
  highlight = { id: arg ? Number(arg) : null, stations: new Set(), title: "" };
  const sel = root.querySelector("#mp-incident");
  sel.addEventListener("change", () => { location.hash = sel.value ? `#/map/${sel.value}` : "#/map"; });
  loadTiles();
  loadIncidents();
}

export function unmount() {
  if (map) map.remove();
  map = null; root = null; markers = new Map(); links = null; areas = null;
}

async function loadTiles() {
  const note = root.querySelector("#mp-tiles");
  let cfg = null;
  try { cfg = await api("/console/map"); } catch { /* the schematic then */ }
  if (!map) return;
  if (cfg && cfg.tiles) {
    L.tileLayer(cfg.tiles.url, { attribution: esc(cfg.tiles.attribution), maxZoom: 19, crossOrigin: false }).addTo(map);
    root.querySelector("#mp-canvas").classList.add("tiled");
    note.textContent = "";
  } else {
    note.textContent = t("map.schematic");
  }
}

async function loadIncidents() {
  let list = [];
  try { list = (await api("/incidents")).data; } catch { /* the map without them */ }
  if (!root) return;
  const sel = root.querySelector("#mp-incident");
  for (const i of list) {
    const o = document.createElement("option");
    o.value = String(i.id);
    o.textContent = `#${i.id} ${i.title}`;
    sel.appendChild(o);
  }
  if (highlight.id) {
    sel.value = String(highlight.id);
    try {
      const inc = await api(`/incidents/${highlight.id}`);
      highlight.stations = new Set((inc.stations || []).map(s => s.station_id));
      highlight.title = `#${inc.id} ${inc.title}`;
    } catch (e) {
      highlight.title = `${t("common.error")}: ${e.message}`;
    }
    if (!root) return;
    root.querySelector("#mp-highlight").textContent = highlight.title
      ? t("map.highlighted", { what: highlight.title, n: highlight.stations.size }) : "";
    for (const [sid, m] of markers) m.key = ""; // re-mark
    render(new Set(["all"]));
    const pts = [...highlight.stations].map(s => state.stations.get(s)).filter(s => s && s.location)
      .map(s => [s.location.lat, s.location.lon]);
    if (pts.length && map) map.fitBounds(L.latLngBounds(pts).pad(0.3), { maxZoom: 16 });
  }
}

// What a marker shows, as text: the level and the time to overflow (the dispatch board's when it ranks the
// station, else the station's own estimate while it is live).
function shown(st) {
  const lv = pointView(st, "wet_well_level_m");
  const level = lv && lv.value != null ? `${num(lv.value, 2)} m` : "–";
  const entry = state.dispatch.data.find(e => e.station === st.id);
  const tv = pointView(st, "tto_spill_min");
  let m = null;
  if (entry && entry.spill_at) m = (Date.parse(entry.spill_at) - serverNow()) / 60000;
  else if (tv && tv.live && tv.value != null) m = tv.value;
  const tto = m != null && m < 24 * 60 ? `${t("overview.tto")} ${minutes(Math.max(0, m))}` : "";
  // red only for a station on the dispatch board (it cannot pump); else the estimate, in grey
  return { level, tto, live: !!(lv && lv.live), urgent: !!entry };
}

function markerHtml(st) {
  return `<span class="mk-name">${esc(st.name)}</span><span class="mk-level"></span><span class="mk-tto"></span>`;
}

function updateMarker(st, m) {
  const status = stationStatus(st);
  const s = shown(st);
  const hl = highlight.stations.has(st.id);
  const key = `${status}|${s.level}|${s.tto}|${s.live}|${hl}|${s.urgent}`;
  if (key === m.key) return; // nothing it shows changed: leave its element alone
  m.key = key;
  const el = m.marker.getElement();
  if (!el) return;
  for (const c of [...el.classList]) if (c.startsWith("st-")) el.classList.remove(c); // Leaflet's own stay
  el.classList.add(`st-${status}`);
  el.classList.toggle("stale", !s.live);
  el.classList.toggle("hl", hl);
  el.classList.toggle("soon", s.urgent);
  el.dataset.status = status;
  el.dataset.highlight = hl ? "1" : "";
  el.querySelector(".mk-level").textContent = s.level;
  el.querySelector(".mk-tto").textContent = s.tto;
  el.title = `${st.name} (${st.id}) · ${term("status", status)} · ${s.level}${s.tto ? " · " + s.tto : ""}`;
}

// Convex hull (monotone chain) of [lat, lon] points, for a power area's shade.
function hull(pts) {
  const p = [...pts].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[1] - o[1]) * (b[0] - o[0]) - (a[0] - o[0]) * (b[1] - o[1]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), q) <= 0) lower.pop(); lower.push(q); }
  for (const q of p.reverse()) { while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

function drawLayout(located) {
  links.clearLayers(); areas.clearLayers();
  const byArea = new Map();
  for (const st of located) {
    if (st.power_area) {
      if (!byArea.has(st.power_area)) byArea.set(st.power_area, []);
      byArea.get(st.power_area).push([st.location.lat, st.location.lon]);
    }
    const to = st.discharges_to && state.stations.get(st.discharges_to);
    if (to && to.location) {
      const a = [st.location.lat, st.location.lon], b = [to.location.lat, to.location.lon];
      L.polyline([a, b], { className: "mp-link", weight: 2, interactive: false }).addTo(links);
      // an arrowhead 60 % of the way: which way the water goes
      const dy = b[0] - a[0], dx = b[1] - a[1], len = Math.hypot(dx, dy);
      if (len > 0) {
        const size = Math.min(len * 0.08, 0.0004), uy = dy / len, ux = dx / len;
        const p = [a[0] + dy * 0.6, a[1] + dx * 0.6];
        L.polygon([[p[0] + uy * size, p[1] + ux * size],
          [p[0] - uy * size * 0.3 + ux * size * 0.5, p[1] - ux * size * 0.3 - uy * size * 0.5],
          [p[0] - uy * size * 0.3 - ux * size * 0.5, p[1] - ux * size * 0.3 + uy * size * 0.5]],
        { className: "mp-arrow", weight: 1, interactive: false }).addTo(links);
      }
    }
  }
  const d = 0.0008; // each station pads its area by about 90 m: one or two stations still make a shade
  for (const [area, pts] of byArea) {
    const padded = pts.flatMap(([a, b]) => [[a + d, b], [a - d, b], [a, b + d], [a, b - d]]);
    const shape = L.polygon(hull(padded), { className: "mp-area", weight: 1 });
    shape.bindTooltip(`${t("overview.area")}: ${area}`, { sticky: true });
    shape.addTo(areas);
  }
}

export function render(what) {
  if (!root || !map) return;
  if (what && !what.has("all") && !what.has("stations") && !what.has("dispatch") && !what.has("connection")
    && !what.has("tick")) return;
  const located = [...state.stations.values()].filter(s => s.location);
  const key = located.map(s => `${s.id}>${s.discharges_to || ""}`).join(",");
  if (key !== layoutKey) {
    layoutKey = key;
    for (const [sid, m] of markers) if (!state.stations.has(sid)) { m.marker.remove(); markers.delete(sid); }
    drawLayout(located);
  }
  if (!fitted && located.length) { // before the first marker: Leaflet draws markers only on a map with a view
    fitted = true;
    map.fitBounds(L.latLngBounds(located.map(s => [s.location.lat, s.location.lon])).pad(0.15));
  }
  for (const st of fitted ? located : []) {
    let m = markers.get(st.id);
    if (!m) {
      const icon = L.divIcon({ className: "mk", html: markerHtml(st), iconSize: null });
      const marker = L.marker([st.location.lat, st.location.lon], { icon, keyboard: true, title: st.name })
        .on("click", () => { location.hash = `#/station/${encodeURIComponent(st.id)}`; }).addTo(map);
      marker.getElement().dataset.station = st.id;
      m = { marker, key: "" };
      markers.set(st.id, m);
    }
    updateMarker(st, m);
  }
  const none = root.querySelector("#mp-none");
  if (!located.length && !none) {
    const p = document.createElement("p");
    p.id = "mp-none"; p.className = "muted";
    p.textContent = state.connected ? t("map.none") : t("conn.waiting");
    root.querySelector(".map-bar").appendChild(p);
  } else if (located.length && none) none.remove();
}
