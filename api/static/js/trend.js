// Trend chart drawn as SVG: one line per point on its own scale band, min–max envelope when the server
// downsampled (each bucket's extremes stay visible, so a short spike is never averaged away).
import { esc, num, time } from "./fmt.js";

const COLOURS = ["#1f6fb2", "#c8102e", "#2f7d4f", "#7b2cbf", "#e46c0a", "#4a5560"];

export function draw(svg, series, start, end, marks = []) {
  const W = svg.clientWidth || 800, H = 260, L = 46, R = 10, T = 10, B = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const t0 = Date.parse(start), t1 = Date.parse(end);
  const x = t => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const parts = [];
  // time grid: 6 ticks
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6, xx = x(t);
    parts.push(`<line class="grid" x1="${xx}" x2="${xx}" y1="${T}" y2="${H - B}"/>`);
    parts.push(`<text class="axis" x="${xx}" y="${H - 6}" text-anchor="middle">${esc(time(new Date(t).toISOString(), t1 - t0 > 86400e3))}</text>`);
  }
  // one y scale for all numeric series of one unit; first series' scale labelled
  const numeric = series.filter(s => s.data.some(d => d.value != null));
  let lo = Infinity, hi = -Infinity;
  for (const s of numeric) for (const d of s.data) {
    if (d.min != null) lo = Math.min(lo, d.min);
    if (d.max != null) hi = Math.max(hi, d.max);
  }
  for (const m of marks) { lo = Math.min(lo, m.value); hi = Math.max(hi, m.value); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
  const y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4, yy = y(v);
    parts.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="axis" x="${L - 4}" y="${yy + 3}" text-anchor="end">${num(v, Math.abs(hi - lo) < 5 ? 2 : 0)}</text>`);
  }
  for (const m of marks) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(m.value)}" y2="${y(m.value)}" stroke="${m.colour}" stroke-dasharray="5 4"/>`);
    parts.push(`<text class="axis" x="${W - R - 2}" y="${y(m.value) - 3}" text-anchor="end" fill="${m.colour}">${esc(m.label)}</text>`);
  }
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length];
    const pts = s.data.filter(d => d.value != null);
    if (s.data.some(d => d.count > 1)) {
      const up = pts.map(d => `${x(Date.parse(d.t)).toFixed(1)},${y(d.max).toFixed(1)}`);
      const down = pts.slice().reverse().map(d => `${x(Date.parse(d.t)).toFixed(1)},${y(d.min).toFixed(1)}`);
      if (up.length) parts.push(`<polygon points="${up.concat(down).join(" ")}" fill="${c}" opacity=".15"/>`);
    }
    // a gap in the data is a gap in the line (no value invented across it)
    let seg = [], prev = null;
    const gap = (t1 - t0) / Math.max(20, s.data.length / 2);
    const flush = () => { if (seg.length) parts.push(`<polyline fill="none" stroke="${c}" stroke-width="1.6" points="${seg.join(" ")}"/>`); seg = []; };
    for (const d of pts) {
      const t = Date.parse(d.t);
      if (prev !== null && t - prev > gap * 3) flush();
      seg.push(`${x(t).toFixed(1)},${y(d.value).toFixed(1)}`);
      prev = t;
    }
    flush();
    s.colour = c;
  });
  svg.innerHTML = parts.join("");
}
