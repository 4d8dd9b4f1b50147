#!/usr/bin/env bash
# Whole-command throughput: `mlsoc normalize` from an access-log file to an
# NDJSON file, over at least 100 MB generated from the real MLflow access
# logs in samples/ (client addresses varied). Prints the best of N runs.
#
#   scripts/bench-cli.sh [runs] [megabytes]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mb=${2:-110}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --locked --quiet
python3 - "$work/access.log" "$mb" <<'EOF'
import random, sys
random.seed(7)
src = [l for l in open("samples/real/mlflow-auth/mlflow-auth-access.log") if l.startswith("127.")]
target = int(sys.argv[2]) * 1024 * 1024
size = 0
with open(sys.argv[1], "w") as out:
    while size < target:
        for l in src:
            ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            s = l.replace("127.0.0.1", ip, 1)
            out.write(s)
            size += len(s)
EOF
lines=$(wc -l < "$work/access.log")
bytes=$(stat -c %s "$work/access.log")
best=""
for _ in $(seq "$runs"); do
  start=$(date +%s.%N)
  ./target/release/mlsoc normalize "$work/access.log" -o "$work/events.ndjson" --no-progress 2>/dev/null
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc -l)
  if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
done
echo "input: $lines lines, $((bytes / 1048576)) MiB (mlflow.gunicorn_access); cores: $(nproc)"
printf 'best of %d: %.2f s, %.0f lines/s, %.1f MiB/s in, output %d MiB\n' "$runs" "$best" \
  "$(echo "$lines / $best" | bc -l)" "$(echo "$bytes / 1048576 / $best" | bc -l)" "$(( $(stat -c %s "$work/events.ndjson") / 1048576 ))"
