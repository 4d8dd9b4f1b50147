#!/usr/bin/env bash
# Installs the Node.js HEC client used to check testkit's fake Splunk HEC
# against a real client (testkit/tests/splunk_logging.rs) into
# target/npmclients. Idempotent: does nothing when the pinned version is
# already there. CI should run it before `cargo test -p testkit`.
set -euo pipefail
cd "$(dirname "$0")/.."

SPLUNK_LOGGING_VERSION=0.11.1
DEST=target/npmclients

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-node-clients: npm not found; the splunk-logging check will be skipped" >&2
  exit 0
fi

installed=$(node -e "try{console.log(require('./$DEST/node_modules/splunk-logging/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$installed" = "$SPLUNK_LOGGING_VERSION" ]; then
  echo "setup-node-clients: splunk-logging $installed already in $DEST"
  exit 0
fi

mkdir -p "$DEST"
if [ ! -f "$DEST/package.json" ]; then
  echo '{"name":"mlsoc-npm-clients","private":true}' > "$DEST/package.json"
fi
npm install --prefix "$DEST" --no-audit --no-fund --save-exact "splunk-logging@$SPLUNK_LOGGING_VERSION"
echo "setup-node-clients: installed splunk-logging $SPLUNK_LOGGING_VERSION in $DEST"
