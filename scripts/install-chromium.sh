#!/usr/bin/env bash
# Installs Debian's chromium for the status page's browser test
# (tests/page.rs) when it is missing: as root with apt-get, quietly.
# Elsewhere it says what to run; the test fails under CI=true without it.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  echo "== installing Debian's chromium for the status page's browser test"
  apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
else
  echo "note: /usr/bin/chromium is missing; the status page's browser test needs it (sudo apt-get install chromium)" >&2
fi
