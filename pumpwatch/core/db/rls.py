"""Tenant isolation in the database, under the API's own checks (defence in depth).

PostgreSQL (installed by migration 0004):
- `pumpwatch_app`, a NOLOGIN role that owns nothing. The API connects as a LOGIN user that is a member of it
  (`PUMPWATCH_API_DATABASE_URL`); the collector, the alarm engine and migrations use the owner's connection.
- Row-level security ENABLEd and FORCEd on every tenant-owned table, with a policy for everyone (`PUBLIC`)
  that admits only rows of the tenants listed in the transaction-local setting `pumpwatch.tenants`
  (`'kita,minami'`; empty or unset: no rows), and a policy for the owner (the role that ran the migration)
  that admits everything: FORCE keeps the owner under RLS, so the system path needs it explicitly.
- `latest_value` has no tenant column: its policy looks the point up (`point_id IN (SELECT … point JOIN
  station …)`), which PostgreSQL runs once per query as a hashed subplan.
- `sample` (a TimescaleDB hypertable where the extension exists) has **no** RLS: TimescaleDB's compression
  refuses a table with row security. The app role has no privilege on it, nor on the rollups
  (`sample_1m`, `sample_1h`) or the continuous aggregates. It reads them only through security-barrier
  views of the same names in the schema `scoped` (`SCOPED_VIEWS`; migration 0008, and
  `historian_scale.ensure_timescale` for the aggregates), owned by the owner, each filtering rows by the
  same point condition as `latest_value`'s policy. The app engine puts `scoped` first in `search_path` at
  the start of every transaction, so the historian's queries are the same text for both roles; without
  it, `sample` resolves to the table and the app role is refused (fails closed).
- The auth tables (`app_user`, `user_session`, `login_failure`) are not tenant data: the API must read them
  to authenticate anyone. `user_grant` rows are visible for the tenants in scope and for the user in
  `pumpwatch.user_id` (so a login can read its own grants).
- `audit_log`: the app role may INSERT and SELECT (its tenants) only; UPDATE, DELETE and TRUNCATE are
  revoked, and a trigger refuses them for everyone, the owner included. SQLite gets the same triggers.

The API side: `scope` (a context variable) holds the tenants and user of the current request; an engine
made with `scoped_engine()` sets them with `set_config(..., true)` at the start of every transaction, so
they cannot leak to the next user of a pooled connection.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event

from pumpwatch.core.db.engine import make_engine

APP_ROLE = "pumpwatch_app"

# table -> the condition a row must meet; `T` is the array of tenants in scope
_T = "pumpwatch_tenants()"
_STATIONS = f"(SELECT s.id FROM station s WHERE s.tenant_id = ANY({_T}))"
_POINTS = f"(SELECT p.id FROM point p JOIN station s ON s.id = p.station_id WHERE s.tenant_id = ANY({_T}))"
_INCIDENTS = f"(SELECT i.id FROM incident i WHERE i.tenant_id = ANY({_T}))"
TENANT_TABLES: dict[str, str] = {
    "tenant": f"id = ANY({_T})",
    "station": f"tenant_id = ANY({_T})",
    "point": f"station_id IN {_STATIONS}",
    "latest_value": f"point_id IN {_POINTS}",
    "alarm": f"tenant_id = ANY({_T})",
    "alarm_event": f"alarm_id IN (SELECT a.id FROM alarm a WHERE a.tenant_id = ANY({_T}))",
    "station_mode": f"station_id IN {_STATIONS}",
    "incident": f"tenant_id = ANY({_T})",
    "incident_station": f"incident_id IN {_INCIDENTS}",
    "incident_note": f"incident_id IN {_INCIDENTS}",
    # on-call notification (issue 5): the API's ack writes a notify_pending row with its journal entry
    "notify_pending": f"event_id IN (SELECT e.id FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
    f"WHERE a.tenant_id = ANY({_T}))",
    "escalation": f"tenant_id = ANY({_T})",
    "notify_item": f"tenant_id = ANY({_T})",
    "notification": f"tenant_id = ANY({_T})",
    "notification_alarm": f"notification_id IN "
    f"(SELECT n.id FROM notification n WHERE n.tenant_id = ANY({_T}))",
    "user_grant": f"tenant_id = ANY({_T}) OR user_id = pumpwatch_user_id()",
    "audit_log": f"tenant_id = ANY({_T})",
}
AUTH_TABLES = ("app_user", "user_session", "login_failure")
# The centre's own tables (migration 0007): their rows carry the centre's tenant id, so the same policy holds
# the app role to users of the centre. Installed apart from TENANT_TABLES: they came later than 0004.
CENTRE_TABLES: dict[str, str] = {
    "dead_letter": f"tenant_id = ANY({_T})",
    "rejection_count": f"tenant_id = ANY({_T})",
}
# Drills and mobile resources (migration 0012), scoped like the rest; installed by that migration.
DRILL_TABLES: dict[str, str] = {
    "drill": f"tenant_id = ANY({_T})",
    "drill_event": f"drill_id IN (SELECT d.id FROM drill d WHERE d.tenant_id = ANY({_T}))",
    "resource_assignment": f"tenant_id = ANY({_T})",
    "resource_event": f"assignment_id IN (SELECT r.id FROM resource_assignment r "
    f"WHERE r.tenant_id = ANY({_T}))",
}
READ_ONLY_TABLES = ("service_heartbeat",)  # no tenant data; the API shows them

# Tables the app role reads only through a security-barrier view `scoped.<name>` (see the docstring).
SCOPED_SCHEMA = "scoped"
POINT_SCOPE = f"point_id IN {_POINTS}"
SCOPED_BASES = ("sample", "sample_1m", "sample_1h")  # the continuous aggregates: historian_scale


@dataclass(frozen=True)
class Scope:
    tenants: frozenset[str]
    user_id: int | None = None

    def setting(self) -> str:
        return ",".join(sorted(self.tenants))


NO_SCOPE = Scope(frozenset())
scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("pumpwatch_scope", default=NO_SCOPE)


def set_scope(tenants: Iterable[str], user_id: int | None = None) -> contextvars.Token[Scope]:
    return scope.set(Scope(frozenset(tenants), user_id))


SCOPED_SEARCH_PATH = f"{SCOPED_SCHEMA}, public"


def scoped_engine(engine: Engine) -> Engine:
    """Make every transaction of `engine` carry the current request's scope (PostgreSQL; no-op else)."""
    if engine.dialect.name != "postgresql" or getattr(engine, "_pumpwatch_scoped", False):
        return engine

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        s = scope.get()
        conn.exec_driver_sql(
            "SELECT set_config('pumpwatch.tenants', %(t)s, true), "
            "set_config('pumpwatch.user_id', %(u)s, true), set_config('search_path', %(p)s, true)",
            {"t": s.setting(), "u": "" if s.user_id is None else str(s.user_id), "p": SCOPED_SEARCH_PATH},
        )

    engine._pumpwatch_scoped = True  # type: ignore[attr-defined]  # our mark on SQLAlchemy's Engine object
    return engine


# --- installation (migration 0004) ------------------------------------------------------------------------

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]


def install(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for sql in _SQLITE_TRIGGERS:
            conn.exec_driver_sql(sql)
        return
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    # Roles are cluster-wide: several databases (tests, tenants of a hosting) create it concurrently.
    x(
        f"""DO $$ BEGIN
            CREATE ROLE {APP_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$"""
    )
    x(
        """CREATE OR REPLACE FUNCTION pumpwatch_tenants() RETURNS text[] LANGUAGE sql STABLE AS $$
            SELECT string_to_array(nullif(current_setting('pumpwatch.tenants', true), ''), ',')
        $$"""
    )
    x(
        """CREATE OR REPLACE FUNCTION pumpwatch_user_id() RETURNS integer LANGUAGE sql STABLE AS $$
            SELECT nullif(current_setting('pumpwatch.user_id', true), '')::integer
        $$"""
    )
    x(
        """CREATE OR REPLACE FUNCTION pumpwatch_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused';
        END $$"""
    )
    x("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    x(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION pumpwatch_audit_append_only()"
    )
    x("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    x(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION pumpwatch_audit_append_only()"
    )
    # Which tenants a user holds, whoever asks (no roles): an admin may only disable a user who holds no
    # tenant beyond the admin's own, and must be able to tell. Runs as the owner, past RLS.
    x(
        """CREATE OR REPLACE FUNCTION pumpwatch_user_tenants(name text) RETURNS SETOF text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT g.tenant_id FROM user_grant g JOIN app_user u ON u.id = g.user_id WHERE u.username = name
        $$"""
    )
    x("REVOKE ALL ON FUNCTION pumpwatch_user_tenants(text) FROM PUBLIC")
    x(f"GRANT EXECUTE ON FUNCTION pumpwatch_user_tenants(text) TO {APP_ROLE}")
    x(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    x(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    x(f"GRANT EXECUTE ON FUNCTION pumpwatch_tenants(), pumpwatch_user_id() TO {APP_ROLE}")
    for table in AUTH_TABLES:
        x(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    for table, cond in TENANT_TABLES.items():
        if table == "audit_log":
            x(f"GRANT SELECT, INSERT ON {table} TO {APP_ROLE}")
            x(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")
        else:
            x(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        x(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        x(f"DROP POLICY IF EXISTS tenant_scope ON {table}")
        x(f"DROP POLICY IF EXISTS system_all ON {table}")
        if table == "audit_log":
            # Logins and logouts are about no tenant: the app may write them, not read them back.
            x(f"CREATE POLICY tenant_scope ON {table} FOR SELECT TO PUBLIC USING ({cond})")
            x(
                f"CREATE POLICY tenant_insert ON {table} FOR INSERT TO PUBLIC "
                f"WITH CHECK (tenant_id IS NULL OR {cond})"
            )
        else:
            x(f"CREATE POLICY tenant_scope ON {table} TO PUBLIC USING ({cond}) WITH CHECK ({cond})")
        x(f"CREATE POLICY system_all ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")


def install_centre_tables(conn: Connection) -> None:
    """Row-level security of the centre's tables (migration 0007); PostgreSQL only."""
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    for table, cond in CENTRE_TABLES.items():
        x(f"GRANT SELECT ON {table} TO {APP_ROLE}")  # the API reads; the collector (owner) writes
        x(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        x(f"DROP POLICY IF EXISTS tenant_scope ON {table}")
        x(f"DROP POLICY IF EXISTS system_all ON {table}")
        x(f"CREATE POLICY tenant_scope ON {table} FOR SELECT TO PUBLIC USING ({cond})")
        x(f"CREATE POLICY system_all ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")
    for table in READ_ONLY_TABLES:
        x(f"GRANT SELECT ON {table} TO {APP_ROLE}")


def uninstall_centre_tables(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    for table in CENTRE_TABLES:
        for policy in ("tenant_scope", "system_all"):
            x(f"DROP POLICY IF EXISTS {policy} ON {table}")
        x(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        x(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    for table in READ_ONLY_TABLES:
        x(f"REVOKE ALL ON {table} FROM {APP_ROLE}")


def install_drill_tables(conn: Connection) -> None:
    """Row-level security of the drill and resource tables (migration 0012); PostgreSQL only."""
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    for table, cond in DRILL_TABLES.items():
        x(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {APP_ROLE}")
        x(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        x(f"DROP POLICY IF EXISTS tenant_scope ON {table}")
        x(f"DROP POLICY IF EXISTS system_all ON {table}")
        x(f"CREATE POLICY tenant_scope ON {table} TO PUBLIC USING ({cond}) WITH CHECK ({cond})")
        x(f"CREATE POLICY system_all ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")
    x(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")


def uninstall_drill_tables(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    for table in DRILL_TABLES:
        for policy in ("tenant_scope", "system_all"):
            x(f"DROP POLICY IF EXISTS {policy} ON {table}")
        x(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        x(f"REVOKE ALL ON {table} FROM {APP_ROLE}")


def uninstall(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        return
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    for table in (*TENANT_TABLES, "sample"):  # sample: the policy 0008's downgrade puts back
        for policy in ("tenant_scope", "tenant_insert", "system_all"):
            x(f"DROP POLICY IF EXISTS {policy} ON {table}")
        x(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        x(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        if table != "audit_log":
            x(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    for table in AUTH_TABLES:
        x(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    x(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    x("DROP FUNCTION IF EXISTS pumpwatch_tenants()")
    x("DROP FUNCTION IF EXISTS pumpwatch_user_id()")
    x("DROP FUNCTION IF EXISTS pumpwatch_user_tenants(text)")
    # the role stays: other databases of the cluster may use it


# --- scoped views (migration 0008; the continuous aggregates' views: historian_scale) --------------------


def scoped_view_sql(name: str) -> list[str]:
    """Create (or replace) `scoped.<name>`, the rows of `public.<name>` (a table or view with `point_id`)
    that the tenants in scope may see, and make it the app role's only way to them. `security_barrier`: a
    caller's own conditions (or functions) run only on rows the scope admits. The view runs with its
    owner's rights, so the owner's RLS policies on point and station apply inside it (all rows) and the
    explicit tenant condition does the scoping."""
    return [
        f"CREATE OR REPLACE VIEW {SCOPED_SCHEMA}.{name} WITH (security_barrier) AS "
        f"SELECT * FROM public.{name} AS r WHERE r.{POINT_SCOPE}",
        f"REVOKE ALL ON public.{name} FROM {APP_ROLE}",
        f"GRANT SELECT ON {SCOPED_SCHEMA}.{name} TO {APP_ROLE}",
    ]


def install_scoped(conn: Connection) -> None:
    """`sample` leaves RLS for views (see the module docstring): migration 0008."""
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    x(f"CREATE SCHEMA IF NOT EXISTS {SCOPED_SCHEMA}")
    x(f"REVOKE ALL ON SCHEMA {SCOPED_SCHEMA} FROM PUBLIC")
    x(f"GRANT USAGE ON SCHEMA {SCOPED_SCHEMA} TO {APP_ROLE}")
    for policy in ("tenant_scope", "system_all"):
        x(f"DROP POLICY IF EXISTS {policy} ON sample")
    # only if set: TimescaleDB refuses any RLS change on a hypertable with its columnstore on
    on: Any = x("SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE oid = 'sample'::regclass")
    if on.scalar():
        x("ALTER TABLE sample NO FORCE ROW LEVEL SECURITY")
        x("ALTER TABLE sample DISABLE ROW LEVEL SECURITY")
    for name in SCOPED_BASES:
        for sql in scoped_view_sql(name):
            x(sql)


def uninstall_scoped(conn: Connection) -> None:
    """Back to 0004's shape: RLS on `sample`, app role privileges on it, no views."""
    if conn.dialect.name != "postgresql":
        return
    x = conn.exec_driver_sql
    x(f"DROP SCHEMA IF EXISTS {SCOPED_SCHEMA} CASCADE")
    x(f"GRANT SELECT, INSERT, UPDATE, DELETE ON sample TO {APP_ROLE}")
    x("ALTER TABLE sample ENABLE ROW LEVEL SECURITY")
    x("ALTER TABLE sample FORCE ROW LEVEL SECURITY")
    x(f"CREATE POLICY tenant_scope ON sample TO PUBLIC USING ({POINT_SCOPE}) WITH CHECK ({POINT_SCOPE})")
    x("CREATE POLICY system_all ON sample TO CURRENT_USER USING (true) WITH CHECK (true)")


def is_owner_or_bypass(conn: Connection) -> bool:
    """True if this connection's role would not be held by RLS (superuser, BYPASSRLS or table owner)."""
    row: Any = conn.exec_driver_sql(
        "SELECT r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, c.relowner, 'USAGE') "
        "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'station'::regclass"
    ).first()
    return bool(row and row[0])


def app_engine(url: str) -> Engine:
    """The API's engine: scoped per request, and refused if its role would not be held by RLS."""
    engine = scoped_engine(make_engine(url))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            if is_owner_or_bypass(conn):
                engine.dispose()
                raise RuntimeError(
                    "PUMPWATCH_API_DATABASE_URL connects as a superuser, a BYPASSRLS role or the tables' "
                    f"owner: row-level security would not hold it. Use a login role in {APP_ROLE}."
                )
    return engine
