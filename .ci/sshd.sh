#!/usr/bin/env bash
# Starts a private OpenSSH server on 127.0.0.1 for the tools/ssh integration
# test, and prints the environment it needs:
#
#   eval "$(bash .ci/sshd.sh)"
#   go test -race ./tools/ssh/...
#
# Runs as root (installs openssh-server if missing). Idempotent: a server this
# script started earlier (same state directory) is stopped and replaced.
# Stop it with: kill "$(cat "$JARVIS_TEST_SSHD_DIR/sshd.pid")"
# Only export lines go to stdout; progress goes to stderr.
set -euo pipefail

log() { echo "sshd.sh: $*" >&2; }

dir="${JARVIS_TEST_SSHD_DIR:-${TMPDIR:-/tmp}/jarvis-test-sshd}"
port="${JARVIS_TEST_SSHD_PORT:-22022}"

if [[ $EUID -ne 0 ]]; then
	log "must run as root (sshd has to switch users)"
	exit 1
fi

if [[ ! -x /usr/sbin/sshd ]]; then
	log "installing openssh-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends openssh-server >&2
fi

mkdir -p "$dir" /run/sshd
chmod 700 "$dir"

# Replace a server left over from an earlier run.
if [[ -f "$dir/sshd.pid" ]]; then
	old="$(cat "$dir/sshd.pid")"
	if kill -0 "$old" 2>/dev/null; then
		log "stopping earlier sshd (pid $old)"
		kill "$old"
		for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$dir/sshd.pid"
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port_busy "$port"; do
	log "port $port is taken, trying $((port + 1))"
	port=$((port + 1))
done

for type in ed25519 rsa ecdsa; do
	[[ -f "$dir/host_$type" ]] || ssh-keygen -q -t "$type" -N '' -f "$dir/host_$type" -C "jarvis-test-host-$type" >&2
done
[[ -f "$dir/client_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -f "$dir/client_ed25519" -C jarvis-test-client >&2
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"

cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
HostKey $dir/host_rsa
HostKey $dir/host_ecdsa
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
MaxSessions 10
LogLevel INFO
CONF

/usr/sbin/sshd -t -f "$dir/sshd_config"
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"

for _ in $(seq 100); do
	port_busy "$port" && break
	sleep 0.1
done
if ! port_busy "$port"; then
	log "sshd did not start listening on 127.0.0.1:$port; log follows"
	cat "$dir/sshd.log" >&2 || true
	exit 1
fi

host="[127.0.0.1]:$port"
: >"$dir/known_hosts"
for type in ed25519 rsa ecdsa; do
	echo "$host $(cut -d' ' -f1,2 "$dir/host_$type.pub")" >>"$dir/known_hosts"
done
echo "$host $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts_ed25519"

log "sshd listening on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid")), state in $dir"
cat <<ENV
export JARVIS_TEST_SSHD_DIR='$dir'
export JARVIS_TEST_SSHD_ADDR='127.0.0.1:$port'
export JARVIS_TEST_SSHD_USER='$(id -un)'
export JARVIS_TEST_SSHD_KEY='$dir/client_ed25519'
export JARVIS_TEST_SSHD_KNOWN_HOSTS='$dir/known_hosts'
export JARVIS_TEST_SSHD_HOSTKEY_ED25519_ONLY_KNOWN_HOSTS='$dir/known_hosts_ed25519'
ENV
