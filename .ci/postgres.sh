#!/usr/bin/env bash
# Starts a private PostgreSQL on 127.0.0.1 for the store tests and the
# two-replica test, and prints the environment they need:
#   eval "$(bash .ci/postgres.sh)"
# Tests run on PostgreSQL only where JARVIS_TEST_DATABASE_URL is set
# (store/storetest), so a plain go test after the eval still runs on SQLite:
#   JARVIS_TEST_DATABASE_URL="$JARVIS_TEST_PG_URL" go test ./store/...
# Runs as root; the server runs as the postgres user. Idempotent: a server this
# script started earlier (same state directory) is stopped and replaced.
# Stop it with: su postgres -c "$JARVIS_TEST_PG_BIN/pg_ctl -D $JARVIS_TEST_PG_DIR/data -m fast stop"
set -euo pipefail
log() { echo "postgres.sh: $*" >&2; }
dir="${JARVIS_TEST_PG_DIR:-${TMPDIR:-/tmp}/jarvis-test-pg}"
port="${JARVIS_TEST_PG_PORT:-55432}"
[[ $EUID -eq 0 ]] || { log "must run as root"; exit 1; }
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
	log "installing postgresql"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
	bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
as_pg() { su postgres -s /bin/sh -c "$*"; }
if [[ -f "$dir/data/postmaster.pid" ]]; then
	log "stopping the earlier server in $dir"
	as_pg "'$bin/pg_ctl' -D '$dir/data' -m immediate -w stop" >&2 || true
fi
rm -rf "$dir"; mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port_busy "$port"; do log "port $port is taken, trying $((port + 1))"; port=$((port + 1)); done
as_pg "'$bin/initdb' -D '$dir/data' -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -N" >"$dir/initdb.log" 2>&1 \
	|| { cat "$dir/initdb.log" >&2; exit 1; }
# Tests, not durability: no fsync. Enough connections for go test -p 2 and two replicas.
as_pg "'$bin/pg_ctl' -D '$dir/data' -l '$dir/postgres.log' -w -t 30 -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start" >&2 \
	|| { cat "$dir/postgres.log" >&2; exit 1; }
# The tests create a database each and drop it WITH (FORCE), which must be
# allowed to end an autovacuum worker's session there: pg_signal_backend.
as_pg "'$bin/psql' -h '$dir' -p $port -U postgres -v ON_ERROR_STOP=1 -q -c \"CREATE ROLE jarvis LOGIN CREATEDB PASSWORD 'jarvis'\" -c 'GRANT pg_signal_backend TO jarvis' -c 'CREATE DATABASE jarvis OWNER jarvis'" >&2
log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, state in $dir"
cat <<ENV
export JARVIS_TEST_PG_DIR='$dir'
export JARVIS_TEST_PG_BIN='$bin'
export JARVIS_TEST_PG_URL='postgres://jarvis:jarvis@127.0.0.1:$port/jarvis?sslmode=disable'
ENV
