#!/usr/bin/env bash
# The test command (README, .ci/run): the Rust suite, then the Python
# package built into a venv under target/ and its pytest suite. Needs the
# Rust toolchain, python3 and the package registry (for maturin and pytest);
# installs Debian's chromium for the browser test when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p target
bash scripts/install-chromium.sh
cargo test 2>&1 | tee target/test-output.log
# The secret the tests give SMTP_PASSWORD (tests/hostile.rs) must appear in
# no output of the whole suite (issue #14).
if grep -qF 'Sup3r$ecret!pw#42' target/test-output.log; then
  echo "a test's SMTP password appears in the test output (target/test-output.log)" >&2
  exit 1
fi

venv="$PWD/target/py-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check maturin pytest
(cd python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --release --quiet)
"$venv/bin/python" -m pytest -q python/tests
