// Translations: one dictionary file per language (/static/i18n/<lang>.json), the language from the
// user's choice, else the signed-in user's locale, else the browser's.
const LANGS = ["ja", "en"];
let lang = "en";
let dict = {};
let fallback = {};

async function load(l) {
  const r = await fetch(`/static/i18n/${l}.json`, { cache: "no-cache" });
  if (!r.ok) throw new Error(`no dictionary for ${l}`);
  return r.json();
}

export function pick(userLocale) {
  const saved = localStorage.getItem("pumpwatch.lang");
  const wanted = [saved, userLocale, ...(navigator.languages || [navigator.language])];
  for (const w of wanted) {
    const l = (w || "").slice(0, 2).toLowerCase();
    if (LANGS.includes(l)) return l;
  }
  return "en";
}

export async function setLang(l, remember = false) {
  if (!LANGS.includes(l)) l = "en";
  if (remember) localStorage.setItem("pumpwatch.lang", l);
  if (!Object.keys(fallback).length) fallback = await load("en");
  dict = l === "en" ? fallback : await load(l);
  lang = l;
  document.documentElement.lang = l;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function current() { return lang; }

// t("alarms.count", {n: 3}) — "{n}" placeholders; an unknown key shows itself (never blank).
export function t(key, vars) {
  let s = dict[key] ?? fallback[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

// Names the server sends (statuses, alarm names, qualities): translated when the dictionary has them.
export function term(kind, name) {
  const key = `${kind}.${name}`;
  return dict[key] ?? fallback[key] ?? name;
}
