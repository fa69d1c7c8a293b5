"""Labels in Japanese and English: the report's fixed words, pumps, units. `t(key, locale)`."""

from __future__ import annotations

from typing import Literal

from pumpwatch.reports.errors import ReportError

__all__ = ["LOCALES", "Locale", "check_locale", "pump_label", "t", "unit_label"]

Locale = Literal["ja", "en"]
LOCALES = ("ja", "en")

_WORDS: dict[str, tuple[str, str]] = {
    "day_report": ("運転日報", "Daily operation report"),
    "month_report": ("運転月報", "Monthly operation report"),
    "summary": ("総括", "Summary"),
    "period": ("期間", "Period"),
    "station": ("施設", "Station"),
    "station_id": ("施設ID", "Station ID"),
    "kind": ("種別", "Kind"),
    "time": ("時刻", "Time"),
    "date": ("日付", "Date"),
    "total": ("合計", "Total"),
    "status": ("状態", "Status"),
    "provisional": ("速報値（期間途中）", "provisional (period in progress)"),
    "no_data": ("欠測", "no data"),
    "not_yet": ("未到来", "not yet"),
    "generated": ("作成", "Generated"),
    "page": ("ページ", "Page"),
    "notes": ("注記", "Notes"),
    "hints": ("保守の目安（同種施設の中央値比）", "Maintenance hints (against the median of the kind)"),
    "past_life": ("標準耐用年数を超えたポンプ", "Pumps past their standard life"),
    "incidents": ("インシデント", "Incidents"),
    "alarm_kpis": ("警報 KPI", "Alarm KPIs"),
    "alarms_by_kind": ("警報内訳（種類別）", "Alarms by kind"),
    "pump": ("ポンプ", "Pump"),
    "install_year": ("設置年", "Installed"),
    "life_years": ("耐用年数", "Standard life (years)"),
    "opened": ("発生", "Opened"),
    "restored": ("復旧", "Restored"),
    "closed": ("終結", "Closed"),
    "phase": ("段階", "Phase"),
    "title": ("件名", "Title"),
    "stations_n": ("施設数", "Stations"),
    "figure": ("項目", "Figure"),
    "completeness": ("データ取得率", "data completeness"),
    "value": ("値", "Value"),
    "median": ("中央値", "Median"),
    "priority": ("優先度", "Priority"),
    "count": ("件数", "Count"),
    "none": ("なし", "none"),
    "source": ("データ源", "Data source"),
    "manhole_pump": ("マンホールポンプ場", "manhole pump station"),
    "relay_pump": ("中継ポンプ場", "relay pump station"),
    "stormwater_pump": ("雨水ポンプ場", "stormwater pump station"),
    "treatment_plant": ("処理場", "treatment plant"),
}
_UNITS: dict[str, tuple[str, str]] = {
    "h": ("h", "h"),
    "min": ("分", "min"),
    "count": ("回", "count"),
    "m3": ("m³", "m³"),
    "m": ("m", "m"),
    "mm": ("mm", "mm"),
    "kWh": ("kWh", "kWh"),
    "mg/L": ("mg/L", "mg/L"),
    "pct": ("%", "%"),
}


def check_locale(locale: str) -> Locale:
    if locale not in LOCALES:
        raise ReportError(f"locale {locale!r}: expected one of {', '.join(LOCALES)}")
    return locale  # type: ignore[return-value]


def t(key: str, locale: str) -> str:
    ja, en = _WORDS[key]
    return ja if locale == "ja" else en


def unit_label(unit: str, locale: str) -> str:
    ja, en = _UNITS[unit]
    return ja if locale == "ja" else en


def pump_label(index: int, locale: str) -> str:
    return f"{index}号ポンプ" if locale == "ja" else f"Pump {index}"
