// Station mimic (SVG): the wet well with its water level and the HWL/LWL/start/stop lines, the pumps with
// their state and current, the mains. A value that is not live is drawn grey and hatched, never as if live.
import { esc, num } from "./fmt.js";
import { t } from "./i18n.js";
import { pointView } from "./store.js";

export function mimic(st) {
  const L = st.levels || {};
  const lv = pointView(st, "wet_well_level_m");
  const top = (L.ground_m || L.spill_m || 3) * 1.02;
  const W = 320, H = 300, wx = 40, ww = 130, wy = 20, wh = 250;
  const y = v => wy + wh - (v / top) * wh;
  const parts = [`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
      <line x1="0" y1="0" x2="0" y2="6" stroke="#b9bec4" stroke-width="3"/></pattern></defs>`];
  parts.push(`<rect x="${wx}" y="${wy}" width="${ww}" height="${wh}" fill="#f4f6f8" stroke="#555" stroke-width="2"/>`);
  if (lv && lv.value != null) {
    const level = Math.max(0, Math.min(top, lv.value));
    const fill = !lv.live ? "url(#hatch)" : L.hwl_m != null && lv.value >= L.hwl_m ? "#e57373" : "#4a90c8";
    parts.push(`<rect class="water" x="${wx + 1}" y="${y(level)}" width="${ww - 2}" height="${wy + wh - y(level)}" fill="${fill}"/>`);
    parts.push(`<text x="${wx + ww / 2}" y="${Math.max(wy + 14, y(level) - 4)}" text-anchor="middle" font-weight="700"
      fill="${lv.live ? "#123" : "#888"}">${num(lv.value, 2)} m${lv.live ? "" : " (" + esc(t("quality." + lv.quality)) + ")"}</text>`);
  }
  const lines = [["spill_m", "#7b2cbf"], ["hwl_m", "#c8102e"], ["lag_m", "#888"], ["start_m", "#2f7d4f"], ["stop_m", "#888"], ["lwl_m", "#e46c0a"]];
  for (const [k, c] of lines) {
    if (L[k] == null) continue;
    parts.push(`<line x1="${wx - 8}" x2="${wx + ww + 8}" y1="${y(L[k])}" y2="${y(L[k])}" stroke="${c}" stroke-dasharray="6 3"/>`);
    parts.push(`<text x="${wx - 10}" y="${y(L[k]) + 4}" text-anchor="end" fill="${c}">${esc(t("level." + k))}</text>`);
  }
  // pumps to the right of the well
  for (let n = 1; n <= 4; n++) {
    const run = pointView(st, `pump${n}_running`);
    if (!run) break;
    const fault = pointView(st, `pump${n}_faulted`), cur = pointView(st, `pump${n}_current_a`);
    const cx = wx + ww + 60, cy = wy + 40 + (n - 1) * 75;
    let fill = "#d9dde1", label = t("pump.stop");
    if (!run.live) { fill = "url(#hatch)"; label = t("pump.unknown"); }
    else if (fault && fault.value === true) { fill = "#c8102e"; label = t("pump.fault"); }
    else if (run.value === true) { fill = "#1f8a4c"; label = t("pump.run"); }
    parts.push(`<g class="pump-sym" data-pump="${n}" data-state="${esc(label)}"><circle cx="${cx}" cy="${cy}" r="20" fill="${fill}" stroke="#333"/>
      <text x="${cx}" y="${cy + 4}" text-anchor="middle" font-weight="700" fill="${fill === "#d9dde1" ? "#333" : "#fff"}">P${n}</text>
      <text x="${cx + 26}" y="${cy - 2}">${esc(label)}</text>
      <text x="${cx + 26}" y="${cy + 13}">${cur && cur.value != null ? num(cur.value, 1) + " A" : ""}${cur && !cur.live ? " ?" : ""}</text></g>`);
    parts.push(`<line x1="${wx + ww}" x2="${cx - 20}" y1="${cy}" y2="${cy}" stroke="#555" stroke-width="2"/>`);
  }
  const mains = pointView(st, "mains_failed");
  if (mains) {
    const failed = mains.value === true;
    parts.push(`<text x="${W - 10}" y="${H - 8}" text-anchor="end" font-weight="700"
      fill="${!mains.live ? "#888" : failed ? "#7b2cbf" : "#2f7d4f"}">${esc(t("mimic.mains"))}: ${!mains.live ? "?" : failed ? esc(t("mimic.mains_failed")) : esc(t("mimic.mains_ok"))}</text>`);
  }
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t("mimic.label"))}">${parts.join("")}</svg>`;
}
