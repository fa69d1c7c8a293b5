"""Input that cannot hurt: the bounds every value from a client is held to, in one place.

- **Datetimes** (`Timestamp`): an explicit offset within ±14:00 (naive times are refused: the API cannot
  guess a zone), between 1970-01-01 and 9000-01-01 UTC, and handed on in UTC. The range keeps every
  `± 400 days` the routes compute inside what Python and both databases hold.
- **Integers**: `RowId` (1 … 2^31 − 1, the database's row ids) and `Int64` (what a BIGINT holds).
- **JSON bodies** (`json_body_problem`, run by `api.gate` on every JSON request before FastAPI parses
  it): strict UTF-8, standard JSON (no NaN/Infinity), integers within 64 bits, finite numbers, at most
  `MAX_DEPTH` levels of nesting, and no string or key holding a lone surrogate or a NUL character (neither
  can be stored nor encoded in an answer). The size limit (`MAX_BODY_BYTES`, 413 beyond) is FastAPI's own
  `max_body_size`, enforced while the body is read, so nothing ever holds a 10 MB body.
- **URLs** (`target_problem`): at most `MAX_TARGET_BYTES` of path and query, no NUL.
- **422 answers** (`validation_error`): what was wrong and where, never the input itself (it may be a
  password or a megabyte), with every string made encodable.

Every refusal is counted by reason (`RejectionCounts`, exported in `/metrics`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest legitimate body (a user with grants) is under 2 KiB
MAX_TARGET_BYTES = 8192  # path + query string
MAX_DEPTH = 32  # JSON nesting; our bodies nest 3 levels at most
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ID_MAX = 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=14)  # UTC−12 … UTC+14 are the zones in use
ECHO_LIMIT = 200  # characters of any client-supplied name (a JSON key, a location) quoted back


def _bounded_time(v: datetime) -> datetime:
    off = v.utcoffset()
    if off is None:
        raise ValueError("needs a UTC offset, e.g. 2026-07-01T09:00:00+09:00 or …Z")
    if abs(off) > MAX_OFFSET:
        raise ValueError("the UTC offset must be within ±14:00")
    # compared before converting: converting 9999-12-31T23:59-14:00 to UTC would overflow
    if not EARLIEST <= v < LATEST:
        raise ValueError("must be between 1970-01-01 and 9000-01-01 (UTC)")
    return v.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(_bounded_time)]
RowId = Annotated[int, Ge(1), Le(ID_MAX)]
Int64 = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]


class RequestModel(BaseModel):
    """A request body: an unknown field is a 422 (a misspelt `reson` must not be dropped silently), and
    the spec says so (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")


class InputError(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    ctx: dict[str, Any] | None = None


class InputErrors(BaseModel):
    """A 422: the request is malformed (`detail` lists what and where; a route's own check is a string)."""

    detail: list[InputError] | str


class RejectionCounts(Counter):
    """Requests refused before any handler ran, by reason: `validation` (422), `too_large` (413),
    `target` (414 or a NUL in the URL), `csrf`, `internal_error` (500)."""

    def render(self) -> bytes:
        lines = [
            "# HELP pumpwatch_api_rejected_requests_total Requests the API refused as malformed or forged",
            "# TYPE pumpwatch_api_rejected_requests_total counter",
        ]
        for reason in sorted(self):
            lines.append(f'pumpwatch_api_rejected_requests_total{{reason="{reason}"}} {self[reason]}')
        return ("\n".join(lines) + "\n").encode()


# --- strings that can be encoded ------------------------------------------------------------------------


def safe_text(s: str, limit: int = ECHO_LIMIT) -> str:
    """`s` cut to `limit` characters, with anything UTF-8 cannot encode (lone surrogates) replaced."""
    cut = s if len(s) <= limit else s[:limit] + "…"
    return cut.encode("utf-8", "replace").decode("utf-8")


def _problem(loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"type": kind, "loc": [safe_text(x) if isinstance(x, str) else x for x in loc], "msg": msg}


def problem_response(status: int, errors: list[dict[str, Any]] | str) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=status)


# --- JSON bodies ----------------------------------------------------------------------------------------


class _Refused(ValueError):
    pass


def _int(s: str) -> int:
    # checked on the digits before converting: Python refuses to parse more than 4300 digits at all
    if len(s.lstrip("-")) > 19 or not INT64_MIN <= (n := int(s)) <= INT64_MAX:
        raise _Refused("an integer beyond 64 bits")
    return n


def _float(s: str) -> float:
    f = float(s)
    if not math.isfinite(f):
        raise _Refused("a number too large to be finite")
    return f


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not JSON")


def _bad_string(s: str) -> str | None:
    if "\x00" in s:
        return "a NUL character"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not Unicode text)"
    return None


def json_body_problem(body: bytes) -> dict[str, Any] | None:
    """Why this JSON body must not reach a handler, as a validation error item; None if it may.

    Syntax errors are left to FastAPI (it reports their position the usual way)."""
    if not body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _problem(("body",), f"not UTF-8 (byte {exc.start})", "json_invalid")
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as exc:
        return _problem(("body",), f"refused: {exc}", "json_invalid")
    except json.JSONDecodeError:
        return None
    except RecursionError:
        return _problem(("body",), f"nested deeper than {MAX_DEPTH} levels", "json_invalid")
    # iterative: a hostile body must not reach the recursion limit here either
    stack: list[tuple[tuple[str | int, ...], Any]] = [(("body",), value)]
    while stack:
        loc, v = stack.pop()
        if len(loc) > MAX_DEPTH + 1:
            return _problem(loc[:3], f"nested deeper than {MAX_DEPTH} levels", "json_invalid")
        if isinstance(v, str):
            if why := _bad_string(v):
                return _problem(loc, f"the string holds {why}", "string_type")
        elif isinstance(v, dict):
            for k, item in v.items():
                if why := _bad_string(k):
                    return _problem(loc, f"a key holds {why}", "string_type")
                stack.append(((*loc, k), item))
        elif isinstance(v, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(v))
    return None


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# --- URLs -----------------------------------------------------------------------------------------------


def target_problem(path: str, raw_path: bytes | None, query: bytes) -> tuple[int, str] | None:
    """(status, why) if the request target must be refused before routing."""
    if len(raw_path or path.encode()) + len(query) > MAX_TARGET_BYTES:
        return 414, f"the URL is longer than {MAX_TARGET_BYTES} bytes"
    if "\x00" in path or b"%00" in query or b"\x00" in query:
        return 422, "the URL holds a NUL character"
    return None


# --- 422 answers ----------------------------------------------------------------------------------------


def _clean(v: Any) -> Any:
    if isinstance(v, bool | int | float) or v is None:
        return v
    return safe_text(str(v))


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without the input (a password, a megabyte) and encodable whatever was sent."""
    items = []
    for e in exc.errors():
        item: dict[str, Any] = {
            "type": safe_text(str(e.get("type", "value_error"))),
            "loc": [x if isinstance(x, int) else safe_text(str(x)) for x in e.get("loc", ())],
            "msg": safe_text(str(e.get("msg", "")), 500),
        }
        ctx = e.get("ctx")
        if isinstance(ctx, dict):
            item["ctx"] = {safe_text(str(k)): _clean(v) for k, v in ctx.items()}
        items.append(item)
    return problem_response(422, items)
