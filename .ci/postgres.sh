#!/usr/bin/env bash
# Starts a private PostgreSQL on 127.0.0.1 for the store tests and the
# two-replica test, and prints the environment they need:
#   eval "$(bash .ci/postgres.sh)"
# Tests run on PostgreSQL only where JARVIS_TEST_DATABASE_URL is set
# (store/storetest), so a plain go test after the eval still runs on SQLite:
#   JARVIS_TEST_DATABASE_URL="$JARVIS_TEST_PG_URL" go test ./store/...
# Runs as root; the server runs as the postgres user. Idempotent: a server this
# script started earlier (same state directory) is stopped and replaced.
# The state directory is JARVIS_TEST_PG_DIR, by default one per checkout (two
# checkouts testing side by side get a server each); the port is
# JARVIS_TEST_PG_PORT or the first free one from 55432.
# Stop it with: su postgres -s /bin/sh -c "$JARVIS_TEST_PG_BIN/pg_ctl -D $JARVIS_TEST_PG_DIR/data -m fast stop"
set -euo pipefail
log() { echo "postgres.sh: $*" >&2; }
[[ $EUID -eq 0 ]] || { log "must run as root"; exit 1; }
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
tmp="${TMPDIR:-/tmp}"
dir="${JARVIS_TEST_PG_DIR:-$tmp/jarvis-test-pg-$(printf '%s' "$repo" | sha256sum | cut -c1-12)}"
port="${JARVIS_TEST_PG_PORT:-55432}"
# Written into every state directory this script makes: the only kind it
# removes outside the temporary directories.
marker=.jarvis-test-pg

# removable says whether the state directory $1 may be replaced: nothing
# there yet, one this script made, or one under /tmp or $TMPDIR (never the
# root, /tmp or $TMPDIR itself).
removable() {
	local d real base
	d="$1"
	[[ -n "$d" && "$d" != / ]] || return 1
	[[ -e "$d" ]] || return 0
	[[ -f "$d/$marker" ]] && return 0
	real="$(realpath -m -- "$d")"
	for base in /tmp "${TMPDIR:-}"; do
		[[ -n "$base" ]] || continue
		base="$(realpath -m -- "$base")"
		[[ "$base" != / && "$real" == "$base"/?* ]] && return 0
	done
	return 1
}
removable "$dir" || { log "refusing to replace $dir: not under /tmp or \$TMPDIR and not made by this script ($marker)"; exit 1; }

# The newest installed server that has initdb (a client-only version may sit
# beside it).
find_bin() { { ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null || true; } | sort -V | tail -1 | sed 's|/initdb$||'; }
bin="$(find_bin)"
if [[ -z "$bin" ]]; then
	# Debian's package would make and start a cluster "main" on 5432 for
	# good; this script wants only its private one.
	conf=/etc/postgresql-common/createcluster.conf
	if ! grep -Eqs '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*(false|off|no|0)' "$conf"; then
		log "telling postgresql-common not to create a main cluster ($conf)"
		mkdir -p "$(dirname "$conf")"
		echo "create_main_cluster = false" >>"$conf"
	fi
	log "installing postgresql"
	# UCF_FORCE_CONFFOLD: postgresql-common installs that file with ucf;
	# keep the one written above without asking.
	export DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
	bin="$(find_bin)"
	[[ -n "$bin" ]] || { log "no initdb under /usr/lib/postgresql after installing postgresql"; exit 1; }
fi
as_pg() { su postgres -s /bin/sh -c "$*"; }
if [[ -f "$dir/data/postmaster.pid" ]]; then
	log "stopping the earlier server in $dir"
	as_pg "'$bin/pg_ctl' -D '$dir/data' -m immediate -w stop" >&2 || true
fi
rm -rf -- "$dir"
mkdir -p "$dir"
touch "$dir/$marker"
chown postgres:postgres "$dir"
chmod 700 "$dir"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port_busy "$port"; do log "port $port is taken, trying $((port + 1))"; port=$((port + 1)); done
as_pg "'$bin/initdb' -D '$dir/data' -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -N" >"$dir/initdb.log" 2>&1 \
	|| { cat "$dir/initdb.log" >&2; exit 1; }
# Tests, not durability: no fsync. Enough connections for go test -p 2 and two replicas.
as_pg "'$bin/pg_ctl' -D '$dir/data' -l '$dir/postgres.log' -w -t 30 -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start" >&2 \
	|| { cat "$dir/postgres.log" >&2; exit 1; }
# The tests create a database each and drop it WITH (FORCE), which must be
# allowed to end an autovacuum worker's session there: pg_signal_backend.
# A server that cannot be used is not left running.
if ! as_pg "'$bin/psql' -h '$dir' -p $port -U postgres -v ON_ERROR_STOP=1 -q -c \"CREATE ROLE jarvis LOGIN CREATEDB PASSWORD 'jarvis'\" -c 'GRANT pg_signal_backend TO jarvis' -c 'CREATE DATABASE jarvis OWNER jarvis'" >&2; then
	log "creating the role and database failed; stopping the server"
	as_pg "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >&2 || true
	exit 1
fi
log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, state in $dir"
cat <<ENV
export JARVIS_TEST_PG_DIR='$dir'
export JARVIS_TEST_PG_BIN='$bin'
export JARVIS_TEST_PG_URL='postgres://jarvis:jarvis@127.0.0.1:$port/jarvis?sslmode=disable'
ENV
