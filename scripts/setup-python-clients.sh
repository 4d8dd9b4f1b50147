#!/usr/bin/env bash
# Installs the official Python clients that the testkit's fakes are checked
# against (the fakes must answer real clients exactly as the real servers do)
# into target/pyclients. Idempotent: a second run with the venv in place and
# the packages installed does nothing but check them.
#
# Needs python3 (with the venv module) and PyPI. The Rust tests that use the
# venv skip with a message when python3 is missing; when python3 is present
# they expect this script to have run (scripts/test.sh calls it).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/pyclients
# One line per client: pip requirement, then the module that proves it is installed.
REQUIREMENTS=(
  "elasticsearch>=9,<10"
)

if ! command -v python3 >/dev/null 2>&1; then
  echo "setup-python-clients: python3 is not installed; the client conformance tests will be skipped" >&2
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p target
  python3 -m venv "$VENV"
fi

if "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
v = m.version("elasticsearch")
sys.exit(0 if v.split(".")[0] == "9" else 1)
PY
then
  echo "setup-python-clients: $VENV is ready"
  exit 0
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
echo "setup-python-clients: installed ${REQUIREMENTS[*]} into $VENV"
