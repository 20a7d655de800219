#!/usr/bin/env bash
# Install Debian's chromium (headless browser for tests/test_report.py) if it is missing.
#
#   scripts/install_chromium.sh        # quick no-op when /usr/bin/chromium exists
#
# Needs root (or sudo) and access to the Debian package mirror. Idempotent: a present
# binary that answers --version means there is nothing to do.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ] && "$CHROMIUM" --version >/dev/null 2>&1; then
  echo "install_chromium: present ($("$CHROMIUM" --version 2>/dev/null | head -1))"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install_chromium: need root or sudo to apt-get install chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install_chromium: apt-get update"
"${SUDO[@]}" apt-get update -qq
echo "install_chromium: apt-get install chromium"
# --no-install-recommends keeps it to the browser and its libraries (no fonts meta, no
# desktop integration); the report uses only DejaVu-like fallback fonts.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version
