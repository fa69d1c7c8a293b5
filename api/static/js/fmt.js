import { t, current } from "./i18n.js";

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// 75 → "1 min 15 s"; durations of data ages, short and exact enough for a glance.
export function age(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("time.s", { n: s });
  if (s < 3600) return t("time.min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("time.h", { n: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  return t("time.d", { n: Math.floor(s / 86400) });
}

// Countdown "1:05:09" (h:mm:ss); negative → "0:00:00".
export function countdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}

export function minutes(m) {
  if (m == null) return "–";
  if (m >= 1440) return t("time.day_plus");
  if (m >= 60) return t("time.h", { n: Math.floor(m / 60), m: Math.round(m % 60) });
  return t("time.min", { n: Math.round(m) });
}

export function num(v, digits = 2) {
  if (v == null) return "–";
  if (typeof v === "boolean") return v ? t("common.on") : t("common.off");
  return Number(v).toFixed(digits);
}

export function time(iso, withDate = false) {
  if (!iso) return "–";
  const d = new Date(iso);
  const opts = withDate
    ? { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : { hour: "2-digit", minute: "2-digit", second: "2-digit" };
  return d.toLocaleString(current() === "ja" ? "ja-JP" : "en-GB", opts);
}
