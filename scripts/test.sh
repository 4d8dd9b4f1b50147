#!/usr/bin/env bash
# Installs what the test suite needs, then runs the whole suite.
# This is the README's second command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install the Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi

# The tests read the repository and ../shared (the SigmaHQ rule corpus).
# The fakes of Elasticsearch and Splunk HEC are checked against the real
# clients: the official Python client (PyPI) and splunk-logging (npm).
scripts/setup-python-clients.sh
scripts/setup-node-clients.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
