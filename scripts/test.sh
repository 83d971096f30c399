#!/usr/bin/env bash
# The test command (README, .ci/run): the Rust suite, then the Python
# package built into a venv under target/ and its pytest suite. Needs the
# Rust toolchain, python3 and the package registry (for maturin and pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test

venv="$PWD/target/py-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check maturin pytest
(cd python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --release --quiet)
"$venv/bin/python" -m pytest -q python/tests
