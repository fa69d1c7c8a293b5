"""Operation reports (運転日報・月報): daily and monthly figures per station and municipality.

Layer: above the alarms, collector and simulators, below the API (docs/architecture.md); it reads the
kernel only (configuration, the historian's tables and rollups, the alarm and incident tables).

- `definitions`: report templates as data (`deploy/config/reports/*.yaml`), validated with precise errors.
- `periods`: a day or a month in the tenant's time zone, as UTC bounds and row boundaries.
- `source`: hourly aggregates per point, from the rollups (plain PostgreSQL tables or TimescaleDB's hourly
  continuous aggregate) where they cover the hours, from raw samples otherwise.
- `compute`: `build_report(...)` → `Report` (rows with completeness, gaps as None, provisional marks).
- `render_csv`, `render_xlsx`, `render_pdf`: the formats; `labels`: ja/en.

Errors: `ReportError` (bad request: unknown station, period, locale) > `DefinitionError` (a bad template).
"""
