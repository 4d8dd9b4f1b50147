"""Compare `mlsoc hunt <scenario>` with the scenario's expected.json.

    python3 samples/scenarios/tools/check.py [--mlsoc PATH] [--hunt-arg ARG ...] samples/scenarios/<s> ...

Prints, per rule, expected and actual counts and any alert missing an expected field value.
Exit code 1 when a scenario disagrees.
"""

import argparse
import collections
import json
import subprocess
import sys


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check(mlsoc, extra, folder):
    exp = json.load(open(f"{folder}/expected.json"))
    run = subprocess.run([mlsoc, "hunt", folder, "--json", *extra], capture_output=True, text=True)
    if run.returncode not in (0, 1):
        print(run.stderr, file=sys.stderr)
        return False
    alerts = collections.defaultdict(list)
    names = {}
    for line in run.stdout.splitlines():
        a = json.loads(line)
        rid = a["rule"]["id"]
        names[rid] = a["rule"].get("name")
        alerts[rid].append(flat({k: v for k, v in a.items() if k not in ("mlsoc", "rule")}))
    ok = True
    print(f"== {exp['scenario']}")
    expected = {e["rule_id"]: e for e in exp["alerts"]}
    for rid in sorted(set(expected) | set(alerts)):
        e = expected.get(rid)
        got = alerts.get(rid, [])
        want = e["count"] if e else 0
        status = "ok" if len(got) == want else "DIFF"
        bad = []
        if e:
            for a in got:
                for k, v in e.get("fields", {}).items():
                    if a.get(k) != v:
                        bad.append(f"{k}={a.get(k)!r} (want {v!r})")
        if bad:
            status = "DIFF"
        ok &= status == "ok"
        title = e["title"] if e else names.get(rid)
        print(f"  {status:4} expected {want} got {len(got)}  {rid}  {title}")
        for b in sorted(set(bad)):
            print(f"         field {b}")
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mlsoc", default="mlsoc")
    p.add_argument("--hunt-arg", action="append", default=[])
    p.add_argument("folders", nargs="+")
    args = p.parse_args()
    ok = all([check(args.mlsoc, args.hunt_arg, f) for f in args.folders])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
