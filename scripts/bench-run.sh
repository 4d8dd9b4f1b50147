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
#
# BENCH_KEEP=DIR keeps the corpora, the configurations and the outputs in
# DIR (for profiling a run again: `mlsoc run --config DIR/bench.toml`).
# BENCH_ONLY=TEXT runs only the rows whose name contains TEXT.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
fake_pid=""
if [ -n "${BENCH_KEEP:-}" ]; then
  work=$BENCH_KEEP
  mkdir -p "$work"
  trap '[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null' EXIT
else
  work=$(mktemp -d)
  trap '[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"' EXIT
fi

cargo build --release --locked --quiet -p mlsoc -p testkit --bins
# Two corpora from the samples: "benign" keeps the lines that raise no
# alert on their own (found with `mlsoc hunt`), as most production traffic
# is; "attack-heavy" repeats the samples as they are (a quarter of the
# events then alert: an alert storm).
python3 - "$work" "$lines" <<'PY'
import json, os, random, subprocess, sys
random.seed(11)
work, total = sys.argv[1], int(sys.argv[2])
def alerting(path):
    out = subprocess.run(["./target/release/mlsoc", "hunt", "--json", path],
                         capture_output=True, text=True).stdout
    bad = set()
    for l in out.splitlines():
        for e in json.loads(l).get("mlsoc", {}).get("alert", {}).get("events", []):
            bad.add(e.get("event", {}).get("original", ""))
    return bad
srcs = [("mlflow-access.log", "samples/real/mlflow-auth/mlflow-auth-access.log", 0.6),
        ("kube-audit.log", "samples/handwritten/kubernetes/audit.log", 0.2),
        ("ingress.log", "samples/handwritten/nginx/ingress.log", 0.15),
        ("cloudtrail.ndjson", "samples/handwritten/cloudtrail/events.ndjson", 0.05)]
for corpus in ("benign", "attack-heavy"):
    out = os.path.join(work, corpus)
    os.makedirs(out, exist_ok=True)
    for name, path, share in srcs:
        src = [l for l in open(path) if l.strip()]
        if name == "mlflow-access.log":
            src = [l for l in src if l.startswith("127.")]
        if corpus == "benign":
            bad = alerting(path)
            src = [l for l in src if l.rstrip("\n") not in bad]
        n = int(total * share)
        with open(os.path.join(out, name), "w") as f:
            for i in range(n):
                l = src[i % len(src)]
                if name == "mlflow-access.log":
                    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
                    l = l.replace("127.0.0.1", ip, 1)
                f.write(l if l.endswith("\n") else l + "\n")
PY
total=$(cat "$work"/benign/* | wc -l)
mb=$(( $(du -sb "$work/benign" | cut -f1) / 1048576 ))

run() { # name, sink toml, extra detect toml, corpus
  if [ -n "${BENCH_ONLY:-}" ] && [[ "$1" != *"$BENCH_ONLY"* ]]; then return 0; fi
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
include = ["$work/${4:-benign}/*"]
stop_at_eof = true
$2
TOML
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" ./target/release/mlsoc run --config "$work/bench.toml" 2> "$work/stderr" || { cat "$work/stderr"; exit 1; }
  read -r secs kb user sys < "$work/time"
  alerts=$(grep -o '[0-9]* alerts' "$work/stderr" | head -1)
  # mlsoc's own CPU time (user + system): what the events cost it, apart
  # from the fake Elasticsearch that shares the cores in the ES rows.
  printf '%-38s %6.2f s  %9.0f events/s  peak RSS %4d MiB  mlsoc CPU %5.2f s  (%s)\n' "$1" "$secs" \
    "$(echo "$total / $secs" | bc -l)" $((kb / 1024)) "$(echo "$user + $sys" | bc -l)" "$alerts"
}

file_sink='[sinks.out]
type = "file"
inputs = ["events", "alerts", "dead_letters"]
path = "'$work'/out/{stream}.ndjson"'

port=$((20000 + RANDOM % 20000))
./target/release/mlsoc-fake es --port "$port" --keep-field event.dataset > "$work/fake.log" 2>&1 &
fake_pid=$!
sleep 0.5
es_sink='[sinks.es]
type = "elasticsearch"
inputs = ["events", "alerts", "dead_letters"]
endpoints = ["http://127.0.0.1:'$port'"]'

echo "input: $total lines, $mb MiB in 4 files (MLflow access 60%, Kubernetes audit 20%, nginx 15%, CloudTrail 5%); cores: $(nproc)"
run "file -> NDJSON, rule pack" "$file_sink" ""
run "file -> NDJSON, pack, attack-heavy" "$file_sink" "" attack-heavy
run "file -> ES fake, rule pack" "$es_sink" ""
if [ -d ../shared/sigma/sigmahq ]; then
  run "file -> NDJSON, pack + SigmaHQ" "$file_sink" 'rules = ["../shared/sigma/sigmahq"]'
  run "file -> ES fake, pack + SigmaHQ" "$es_sink" 'rules = ["../shared/sigma/sigmahq"]'
fi
