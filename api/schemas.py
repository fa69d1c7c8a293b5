"""API schemas. Timestamps are ISO 8601 with an explicit offset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

IsoTime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]
QualityLabel = Literal["good", "stale", "comm_loss", "bad_value", "sensor_fault", "not_available", "no_data"]
StationStatus = Literal["normal", "alarm", "comm_loss", "stale", "no_data"]


class PointValue(BaseModel):
    value: float | bool | None
    unit: str | None
    quality: QualityLabel
    observed_at: IsoTime | None
    age_s: float | None


class LocationPublic(BaseModel):
    lat: float
    lon: float


class StationPublic(BaseModel):
    id: str
    tenant: str
    name: str
    kind: str
    power_area: str | None
    location: LocationPublic | None
    status: StationStatus
    active_alarms: list[str]
    data_age_s: float | None  # age of the newest value
    stale_after_s: float | None  # a value older than this is shown as stale
    values: dict[str, PointValue]


class StationsPublic(BaseModel):
    data: list[StationPublic]
    count: int
    at: IsoTime


class TenantPublic(BaseModel):
    id: str
    name: str
    timezone: str


class TenantsPublic(BaseModel):
    data: list[TenantPublic]
    count: int


class HistoryPointPublic(BaseModel):
    t: IsoTime
    value: float | None
    min: float | None
    max: float | None
    count: int
    good: int


class HistoryPublic(BaseModel):
    station: str
    point: str
    unit: str | None
    start: IsoTime
    end: IsoTime
    downsampled: bool
    data: list[HistoryPointPublic]


class AlarmPublic(BaseModel):
    id: int
    tenant: str
    station: str
    name: str
    priority: str
    message: str
    active: bool
    value: float | None
    raised_at: IsoTime
    cleared_at: IsoTime | None


class AlarmsPublic(BaseModel):
    data: list[AlarmPublic]
    count: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}
