#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test (cmd/jarvis/browser_test.go).
# Idempotent: does nothing when /usr/bin/chromium is already there; refreshes the
# package lists only when apt cannot find the package.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show chromium >/dev/null 2>&1 || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
	$SUDO apt-get -o DPkg::Lock::Timeout=300 update
fi
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium

if [ ! -x /usr/bin/chromium ]; then
	echo "chromium was installed but /usr/bin/chromium is missing" >&2
	exit 1
fi
echo "installed: $(/usr/bin/chromium --version)"
