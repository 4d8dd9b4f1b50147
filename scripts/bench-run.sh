#!/usr/bin/env bash
# End-to-end throughput of the daemon: `mlsoc run` tails generated log files
# (MLflow access, Kubernetes audit, nginx ingress, CloudTrail lines; realistic
# shapes from samples/), normalizes, runs the detection rules and delivers to
#   1. an NDJSON file sink, and
#   2. the Elasticsearch fake (`mlsoc-fake es`, a separate process),
# with the built-in rule pack, and again with the whole SigmaHQ corpus added
# (../shared/sigma/sigmahq) when it is present. The file source reads every
# file to its end and stops (`stop_at_eof`), so the run ends when everything
# is delivered. Prints events/s and the peak RSS of mlsoc.
#
#   scripts/bench-run.sh [lines]        (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
work=$(mktemp -d)
fake_pid=""
trap '[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --locked --quiet -p mlsoc -p testkit --bins
python3 - "$work/logs" "$lines" <<'PY'
import json, os, random, sys
random.seed(11)
out, total = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
access = [l for l in open("samples/real/mlflow-auth/mlflow-auth-access.log") if l.startswith("127.")]
audit = [l for l in open("samples/handwritten/kubernetes/audit.log") if l.strip()]
ingress = [l for l in open("samples/handwritten/nginx/ingress.log") if l.strip()]
trail = [l for l in open("samples/handwritten/cloudtrail/events.ndjson") if l.strip()]
mix = [("mlflow-access.log", access, 0.6), ("kube-audit.log", audit, 0.2),
       ("ingress.log", ingress, 0.15), ("cloudtrail.ndjson", trail, 0.05)]
for name, src, share in mix:
    n = int(total * share)
    with open(os.path.join(out, name), "w") as f:
        for i in range(n):
            l = src[i % len(src)]
            ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            l = l.replace("127.0.0.1", ip, 1) if name == "mlflow-access.log" else l
            f.write(l if l.endswith("\n") else l + "\n")
PY
total=$(cat "$work"/logs/* | wc -l)
mb=$(( $(du -sb "$work/logs" | cut -f1) / 1048576 ))

run() { # name, sink toml, extra detect toml
  rm -rf "$work/data" "$work/out"
  cat > "$work/bench.toml" <<TOML
data_dir = "$work/data"
[detect]
$3
[detect.placeholder]
# A deployment whose admins work from the 10/8 VPN (the generated clients).
mlsoc_mlflow_admin_networks = ["10.0.0.0/8", "127.0.0.0/8"]
[sources.logs]
type = "file"
include = ["$work/logs/*"]
stop_at_eof = true
$2
TOML
  /usr/bin/time -f "%e %M" -o "$work/time" ./target/release/mlsoc run --config "$work/bench.toml" 2> "$work/stderr" || { cat "$work/stderr"; exit 1; }
  read -r secs kb < "$work/time"
  printf '%-34s %9d events  %6.2f s  %9.0f events/s  peak RSS %4d MiB\n' "$1" "$total" "$secs" \
    "$(echo "$total / $secs" | bc -l)" $((kb / 1024))
}

file_sink='[sinks.out]
type = "file"
inputs = ["events", "alerts", "dead_letters"]
path = "'$work'/out/{stream}.ndjson"'

port=$((20000 + RANDOM % 20000))
./target/release/mlsoc-fake es --port "$port" > "$work/fake.log" 2>&1 &
fake_pid=$!
sleep 0.5
es_sink='[sinks.es]
type = "elasticsearch"
inputs = ["events", "alerts", "dead_letters"]
endpoints = ["http://127.0.0.1:'$port'"]
batch = { max_events = 2000 }'

echo "input: $total lines, $mb MiB in 4 files; cores: $(nproc)"
run "file -> NDJSON, rule pack" "$file_sink" ""
run "file -> ES fake, rule pack" "$es_sink" ""
if [ -d ../shared/sigma/sigmahq ]; then
  run "file -> NDJSON, pack + SigmaHQ" "$file_sink" 'rules = ["../shared/sigma/sigmahq"]'
  run "file -> ES fake, pack + SigmaHQ" "$es_sink" 'rules = ["../shared/sigma/sigmahq"]'
fi
