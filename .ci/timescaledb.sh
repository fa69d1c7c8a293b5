#!/usr/bin/env bash
# A TimescaleDB cluster beside the plain PostgreSQL one, for the tests' second database (run as root, from
# .ci/run; idempotent: a second run only checks). Builds TimescaleDB 2.28.3 from the vendored source when it
# is not installed (4-6 min on 2 cores, once per machine), creates cluster `15 tsdb` on port 5433 preloading
# it, starts it, and gives `postgres` the password `postgres`; likewise `15 tsdb_apache` on 5434 restricted to
# the Apache licence. The main cluster on 5432 stays plain.
#   PUMPWATCH_VENDOR_DIR  folder with install-timescaledb.sh (default: the first ../shared/vendor found
#                         above this checkout)
#   PUMPWATCH_TSDB_PORT   5433
#   PUMPWATCH_TSDB_APACHE_PORT  5434: a second TimescaleDB cluster with timescaledb.license = 'apache'
set -euo pipefail
cd "$(dirname "$0")/.."
pg=15
ver=2.28.3
port=${PUMPWATCH_TSDB_PORT:-5433}
apache_port=${PUMPWATCH_TSDB_APACHE_PORT:-5434}

if [ ! -f "/usr/share/postgresql/$pg/extension/timescaledb--$ver.sql" ] || \
   [ ! -f "/usr/lib/postgresql/$pg/lib/timescaledb-$ver.so" ]; then
  vendor=${PUMPWATCH_VENDOR_DIR:-}
  if [ -z "$vendor" ]; then
    for d in ../shared/vendor ../../shared/vendor ../../../shared/vendor /work/shared/vendor; do
      [ -x "$d/install-timescaledb.sh" ] && vendor=$d && break
    done
  fi
  if [ -z "$vendor" ] || [ ! -x "$vendor/install-timescaledb.sh" ]; then
    echo "ci: TimescaleDB $ver is not installed and no install-timescaledb.sh was found" \
         "(set PUMPWATCH_VENDOR_DIR to the folder holding it)" >&2
    exit 1
  fi
  # The script skips postgresql-server-dev when pg_config exists, but postgresql-client ships a pg_config
  # too: without the server headers the build fails with "postgres.h: No such file". Install them here.
  need=()
  for p in "postgresql-server-dev-$pg" cmake build-essential libssl-dev libkrb5-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "ci: installing ${need[*]} (to build TimescaleDB)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  echo "ci: building TimescaleDB $ver (4-6 min, once per machine)"
  "$vendor/install-timescaledb.sh" "$pg"
fi

# cluster NAME PORT [EXTRA_CONF]: create (once), configure, start, and check it preloads TimescaleDB
cluster() {
  local name=$1 port=$2 extra=${3:-} conf=/etc/postgresql/$pg/$1
  if [ ! -d "$conf" ]; then
    echo "ci: creating PostgreSQL cluster $pg/$name on port $port"
    pg_createcluster "$pg" "$name" -p "$port" >/dev/null
  fi
  # Preloaded; telemetry off (no call home from CI). The background scheduler stays on, as in production:
  # tests that need a policy to have run call run_job() themselves and never rely on its timing.
  mkdir -p "$conf/conf.d"
  local want
  want=$(printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $port" \
    "shared_preload_libraries = 'timescaledb'" "timescaledb.telemetry_level = off" \
    "max_connections = 200" \
    "max_worker_processes = 32" ${extra:+"$extra"})  # a job scheduler per database, TimescaleDB's jobs
  if [ "$want" != "$(cat "$conf/conf.d/90-pumpwatch.conf" 2>/dev/null)" ]; then
    printf '%s\n' "$want" >"$conf/conf.d/90-pumpwatch.conf"
    if pg_isready -q -h 127.0.0.1 -p "$port"; then  # settings changed under a running cluster
      echo "ci: restarting PostgreSQL $pg/$name for its new settings"
      pg_ctlcluster --skip-systemctl-redirect "$pg" "$name" restart
    fi
  fi
  if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
    echo "ci: starting PostgreSQL $pg/$name (TimescaleDB) on port $port"
    pg_ctlcluster --skip-systemctl-redirect "$pg" "$name" start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
  fi
  su postgres -c "psql -p $port -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  local preload
  preload=$(su postgres -c "psql -p $port -Atc 'SHOW shared_preload_libraries'")
  case "$preload" in
    *timescaledb*) ;;
    *) echo "ci: cluster $pg/$name runs without timescaledb preloaded ($preload): restarting it"
       pg_ctlcluster --skip-systemctl-redirect "$pg" "$name" restart ;;
  esac
}

cluster tsdb "$port"
# The same build restricted to its Apache-2.0 part: TimescaleDB takes the licence only from the server's
# configuration (not per database or session), so the partial-set-up tests get a cluster of their own.
cluster tsdb_apache "$apache_port" "timescaledb.license = 'apache'"
echo "ci: TimescaleDB $ver on 127.0.0.1:$port, Apache-only on 127.0.0.1:$apache_port"
