"""Scenario c: model supply-chain tampering - artifact overwritten after registration ->
promotion to production by a non-release identity.

Writes samples/scenarios/c-model-supply-chain/{mlflow/mlflow-access.log,kubernetes/audit.log,
ingress/ingress-nginx-controller.log}.
Run: python3 samples/scenarios/tools/gen_c.py
"""

import datetime as dt
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(__file__))
from common import Timeline, gunicorn, hexid, k8s_audit, rnd, t  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "c-model-supply-chain")
DAY = 26
R = rnd(20261126_3)
TL = Timeline()
ms = dt.timedelta(milliseconds=1)
sec = dt.timedelta(seconds=1)

MLF = "mlflow/mlflow-access.log"
AUDIT = "kubernetes/audit.log"
ING = "ingress/ingress-nginx-controller.log"
CLIENT = "mlflow-python-client/3.17.2"
A, B = "attack", "benign"

EXP = 3
R7 = hexid(R)   # run of fraud-classifier v7, in production this morning
R8 = hexid(R)   # run of v8, trained by CI today
CI, VALIDATOR, REL, DEP = "10.20.4.17", "10.20.4.21", "10.20.4.18", "10.20.4.19"
DAVE = "10.30.2.58"   # dave's laptop on the VPN (remote-controlled by the attacker)
MODEL_FILES = [("MLmodel", 611), ("conda.yaml", 254), ("python_env.yaml", 122), ("requirements.txt", 98),
               ("input_example.json", 1_420), ("serving_input_example.json", 1_503), ("model.pkl", 48_318_517)]


def mlf(ts, ip, user, method, uri, status, size, label, ua=CLIENT):
    TL.add(MLF, ts, gunicorn(ts, ip, user, method, uri, status, size, ua), label)


def runs_get(ts, ip, user, run, label, size=None):
    mlf(ts, ip, user, "GET", f"/api/2.0/mlflow/runs/get?run_uuid={run}&run_id={run}", 200,
        size or 2300 + R.randint(0, 500), label)


# ====================================================================== benign
# kubelet readiness probe of the tracking server
tt = t(DAY, "08:59:00", 733)
while tt < t(DAY, "11:00:00"):
    mlf(tt, "10.0.3.22", None, "GET", "/health", 200, 2, B, ua="kube-probe/1.31")
    tt += dt.timedelta(seconds=30, milliseconds=R.randint(-15, 15))

# 1. CI trains fraud-classifier on the new data and registers it as version 8
tt = t(DAY, "09:02:03", 118)
mlf(tt, CI, "svc-ci-trainer", "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=fraud-detection",
    200, 327, B)
tt += 610 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/runs/create", 200, 903, B)
tt += 380 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/runs/log-batch", 200, 2, B)
for epoch in range(12):
    tt += R.randint(18, 32) * sec
    mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/runs/log-batch", 200, 2, B)
tt += 2 * sec
runs_get(tt, CI, "svc-ci-trainer", R8, B, 1877)
for name, size in MODEL_FILES:
    tt += (300 + size // 60_000) * ms
    mlf(tt, CI, "svc-ci-trainer", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{EXP}/{R8}/artifacts/model/{name}",
        200, 2, B)
tt += 200 * ms
runs_get(tt, CI, "svc-ci-trainer", R8, B, 1931)
tt += 150 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/runs/update", 200, 411, B)
# mlflow.register_model("runs:/<run>/model", "fraud-classifier"): the registered model exists (400), new version 8
tt += 900 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/registered-models/create", 400, 151, B)
tt += 120 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/model-versions/create", 200, 583, B)
REGISTERED = tt
tt += 300 * ms
mlf(tt, CI, "svc-ci-trainer", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, B)

# 2. the CI validation job evaluates version 8 on the hold-out set and tags it
tt = t(DAY, "09:12:40", 12)
mlf(tt, VALIDATOR, "svc-ci-validator", "GET", "/api/2.0/mlflow/model-versions/get?name=fraud-classifier&version=8",
    200, 781, B)
tt += 60 * ms
mlf(tt, VALIDATOR, "svc-ci-validator", "GET",
    "/api/2.0/mlflow/model-versions/get-download-uri?name=fraud-classifier&version=8", 200, 111, B)
tt += 50 * ms
runs_get(tt, VALIDATOR, "svc-ci-validator", R8, B, 2012)
tt += 40 * ms
mlf(tt, VALIDATOR, "svc-ci-validator", "GET",
    f"/api/2.0/mlflow-artifacts/artifacts?path={EXP}%2F{R8}%2Fartifacts%2Fmodel", 200, 790, B)
for name, size in MODEL_FILES:
    tt += (40 + size // 250_000) * ms
    mlf(tt, VALIDATOR, "svc-ci-validator", "GET", f"/api/2.0/mlflow-artifacts/artifacts/{EXP}/{R8}/artifacts/model/{name}",
        200, size, B)
tt += 1500 * ms
eval_run = hexid(R)
mlf(tt, VALIDATOR, "svc-ci-validator", "POST", "/api/2.0/mlflow/runs/create", 200, 912, B)
tt += 300 * ms
mlf(tt, VALIDATOR, "svc-ci-validator", "POST", "/api/2.0/mlflow/runs/log-batch", 200, 2, B)
for _ in range(4):
    tt += R.randint(2, 9) * sec
    mlf(tt, VALIDATOR, "svc-ci-validator", "POST", "/api/2.0/mlflow/runs/log-metric", 200, 2, B)
tt += 400 * ms
mlf(tt, VALIDATOR, "svc-ci-validator", "POST", "/api/2.0/mlflow/runs/update", 200, 409, B)
tt += 200 * ms
mlf(tt, VALIDATOR, "svc-ci-validator", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, B)

# 3. the model deployer polls the production alias every 5 minutes
tt = t(DAY, "09:00:03", 411)
ALIAS_MOVED = t(DAY, "09:54:07")
while tt < t(DAY, "11:00:00"):
    mlf(tt, DEP, "svc-model-deployer", "GET",
        "/api/2.0/mlflow/registered-models/alias?name=fraud-classifier&alias=production", 200, 760, B)
    tt += dt.timedelta(minutes=5, milliseconds=R.randint(-300, 300))

# 4. jonas looks at the fraud-detection runs in the UI
FF = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:133.0) Gecko/20100101 Firefox/133.0"
tt = t(DAY, "09:31:14", 230)
for method, uri, size in [("GET", "/", 1164), ("GET", "/static-files/static/js/main.8c1f2a7e.js", 9_418_230),
                          ("POST", "/ajax-api/2.0/mlflow/experiments/search", 2410),
                          ("GET", "/ajax-api/2.0/mlflow/experiments/get?experiment_id=3", 640),
                          ("POST", "/ajax-api/2.0/mlflow/runs/search", 21_312),
                          ("GET", f"/ajax-api/2.0/mlflow/runs/get?run_id={R8}", 2630),
                          ("GET", f"/ajax-api/2.0/mlflow/metrics/get-history?run_uuid={R8}&metric_key=val_auc", 1733),
                          ("GET", "/ajax-api/2.0/mlflow/registered-models/get?name=fraud-classifier", 3870)]:
    tt += R.randint(400, 7000) * ms
    mlf(tt, "10.30.2.77", "jonas", method, uri, 200, size, B, ua=FF)

# 5. the release bot promotes churn-predictor v6 (the allowlisted release identity)
tt = t(DAY, "10:20:02", 44)
mlf(tt, REL, "mlflow-release-bot", "GET", "/api/2.0/mlflow/model-versions/get?name=churn-predictor&version=6", 200, 772, B)
mlf(tt + 600 * ms, REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, B)
mlf(tt + 900 * ms, REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/registered-models/alias", 200, 2, B)

# 6. priya logs a notebook experiment
tt = t(DAY, "10:31:40", 505)
prun = hexid(R)
mlf(tt, "10.30.2.41", "priya", "POST", "/api/2.0/mlflow/runs/create", 200, 889, B)
mlf(tt + 400 * ms, "10.30.2.41", "priya", "POST", "/api/2.0/mlflow/runs/log-batch", 200, 2, B)
for i in range(5):
    mlf(tt + (i + 2) * 3 * sec, "10.30.2.41", "priya", "POST", "/api/2.0/mlflow/runs/log-metric", 200, 2, B)
mlf(tt + 20 * sec, "10.30.2.41", "priya", "POST", "/api/2.0/mlflow/runs/update", 200, 404, B)

# 7. response: after the incident call, the release bot points production back to version 7
tt = t(DAY, "10:52:18", 7)
mlf(tt, REL, "mlflow-release-bot", "GET", "/api/2.0/mlflow/model-versions/get?name=fraud-classifier&version=7", 200, 779, B)
mlf(tt + 700 * ms, REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/registered-models/alias", 200, 2, B)
mlf(tt + 900 * ms, REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, B)

# ====================================================================== attack (dave's session)
tt = t(DAY, "09:38:12", 77)
mlf(tt, DAVE, "dave", "GET", "/api/2.0/mlflow/registered-models/get?name=fraud-classifier", 200, 3870, A)
tt += 1900 * ms
mlf(tt, DAVE, "dave", "GET", "/api/2.0/mlflow/model-versions/get?name=fraud-classifier&version=8", 200, 812, A)
tt += 800 * ms
mlf(tt, DAVE, "dave", "GET", "/api/2.0/mlflow/model-versions/get-download-uri?name=fraud-classifier&version=8",
    200, 111, A)
tt += 50 * ms
runs_get(tt, DAVE, "dave", R8, A, 2012)
tt += 40 * ms
mlf(tt, DAVE, "dave", "GET", f"/api/2.0/mlflow-artifacts/artifacts?path={EXP}%2F{R8}%2Fartifacts%2Fmodel", 200, 790, A)
for name, size in MODEL_FILES:
    if name not in ("MLmodel", "requirements.txt", "model.pkl"):
        continue
    tt += (60 + size // 30_000) * ms
    mlf(tt, DAVE, "dave", "GET", f"/api/2.0/mlflow-artifacts/artifacts/{EXP}/{R8}/artifacts/model/{name}", 200, size, A)
# 13 minutes later: the backdoored pickle replaces the registered one
# (MlflowClient().log_artifact(run_id, "model.pkl", "model"): runs/get, then PUT through the artifact proxy)
tt = t(DAY, "09:51:40", 306)
runs_get(tt, DAVE, "dave", R8, A, 2012)
tt += 1200 * ms
mlf(tt, DAVE, "dave", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{EXP}/{R8}/artifacts/model/model.pkl", 200, 2, A)
OVERWRITE = tt
# the approval tag the release process looks at is set by hand, then the production alias is moved to v8
tt = t(DAY, "09:53:51", 640)
mlf(tt, DAVE, "dave", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, A)
tt = t(DAY, "09:54:05", 12)
mlf(tt, DAVE, "dave", "GET", "/api/2.0/mlflow/registered-models/alias?name=fraud-classifier&alias=production", 200, 760, A)
mlf(ALIAS_MOVED, DAVE, "dave", "POST", "/api/2.0/mlflow/registered-models/alias", 200, 2, A)

# ---------------------------------------------------------------- deployer reacts (benign automation)
DEPLOY_AT = t(DAY, "10:00:04", 508)
mlf(DEPLOY_AT + 90 * ms, DEP, "svc-model-deployer", "GET",
    "/api/2.0/mlflow/model-versions/get-download-uri?name=fraud-classifier&version=8", 200, 111, B)
ROLLBACK_AT = t(DAY, "10:55:04", 203)
mlf(ROLLBACK_AT + 90 * ms, DEP, "svc-model-deployer", "GET",
    "/api/2.0/mlflow/model-versions/get-download-uri?name=fraud-classifier&version=7", 200, 111, B)

# ---------------------------------------------------------------- Kubernetes audit
DEP_SA = "system:serviceaccount:mlops:model-deployer"
DEP_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:mlops", "system:authenticated"]
DEP_UA = "OpenAPI-Generator/31.0.0/python"
DEP_REASON = ('RBAC: allowed by RoleBinding "model-deployer/models" of ClusterRole "kserve-deployer" '
              'to ServiceAccount "model-deployer/mlops"')
DEP_EXTRA = {"authentication.kubernetes.io/credential-id": ["JTI=4c2d9a7e-1b3f-4e6a-8d0c-5f7b9e1a3c25"],
             "authentication.kubernetes.io/node-name": ["cpu-node-2"],
             "authentication.kubernetes.io/pod-name": ["model-deployer-6c8d9f7b54-q7m2x"],
             "authentication.kubernetes.io/pod-uid": ["0d3b6e91-7a2c-4f58-b1e4-9c6a2d8f5e17"]}
ISVC_REF = {"resource": "inferenceservices", "namespace": "models", "name": "fraud-classifier",
            "apiGroup": "serving.kserve.io", "apiVersion": "v1beta1"}


def audit(ts, label, *a, **k):
    TL.add(AUDIT, ts, k8s_audit(R, ts, *a, **k), label)


tt = t(DAY, "08:55:02", 200)
while tt < t(DAY, "11:00:00"):
    audit(tt, B, "get", "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud-classifier",
          DEP_SA, DEP_GROUPS, "10.244.6.14", DEP_UA, ISVC_REF, 200, extra=DEP_EXTRA, reason=DEP_REASON)
    tt += dt.timedelta(minutes=5, milliseconds=R.randint(-300, 300))


def rollout(ts, run, label):
    uri = f"s3://ml-models/mlflow/{EXP}/{run}/artifacts/model"
    patch = {"spec": {"predictor": {"model": {"storageUri": uri}}}}
    resp = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "fraud-classifier", "namespace": "models",
                         "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                         "mlflow.org/registered-model": "fraud-classifier"},
                         "uid": "7b1d2e9c-4f3a-4c8b-9e2d-6a5f1c0b8d34", "generation": 23 if run == R8 else 24},
            "spec": {"predictor": {"serviceAccountName": "kserve-s3-reader",
                                   "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                                             "storageUri": uri}}}}
    audit(ts, label, "patch",
          "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud-classifier?fieldManager=model-deployer",
          DEP_SA, DEP_GROUPS, "10.244.6.14", DEP_UA, ISVC_REF, 200, level="RequestResponse", extra=DEP_EXTRA,
          request_object=patch, response_object=resp, reason=DEP_REASON, latency_ms=41)
    audit(ts + 160 * ms, label, "update", "/apis/apps/v1/namespaces/models/deployments/fraud-classifier-predictor",
          "system:serviceaccount:kserve:kserve-controller-manager",
          ["system:serviceaccounts", "system:serviceaccounts:kserve", "system:authenticated"], "10.244.0.44",
          "manager/v0.0.0 (linux/amd64) kubernetes/$Format",
          {"resource": "deployments", "namespace": "models", "name": "fraud-classifier-predictor",
           "apiGroup": "apps", "apiVersion": "v1"}, 200,
          reason='RBAC: allowed by ClusterRoleBinding "kserve-manager-rolebinding" of ClusterRole '
                 '"kserve-manager-role" to ServiceAccount "kserve-controller-manager/kserve"')
    audit(ts + 210 * ms, label, "update",
          "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud-classifier/status",
          "system:serviceaccount:kserve:kserve-controller-manager",
          ["system:serviceaccounts", "system:serviceaccounts:kserve", "system:authenticated"], "10.244.0.44",
          "manager/v0.0.0 (linux/amd64) kubernetes/$Format", dict(ISVC_REF, subresource="status"), 200,
          reason='RBAC: allowed by ClusterRoleBinding "kserve-manager-rolebinding" of ClusterRole '
                 '"kserve-manager-role" to ServiceAccount "kserve-controller-manager/kserve"')


rollout(DEPLOY_AT + 400 * ms, R8, B)
rollout(ROLLBACK_AT + 400 * ms, R7, B)

# ---------------------------------------------------------------- ingress in front of the predictor
# the payment service scores transactions; the predictor pod changes with each rollout
pods = [(t(DAY, "00:00:00"), "10.244.5.17:8080"), (DEPLOY_AT + 48 * sec, "10.244.5.62:8080"),
        (ROLLBACK_AT + 51 * sec, "10.244.5.88:8080")]
tt = t(DAY, "08:55:07", 0)
while tt < t(DAY, "11:00:00"):
    upstream = [p for s, p in pods if s <= tt][-1]
    rt = R.randint(9, 31) / 1000
    size = R.choice([211, 212, 212, 213])
    rid = hexid(R)
    line = (f'10.40.1.12 - - [{tt.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "POST /v2/models/fraud-classifier/infer HTTP/1.1" '
            f'200 {size} "-" "payments-scoring/4.12.0 (okhttp/4.12.0)" 1288 {rt:.3f} [models-fraud-classifier-predictor-80] '
            f'[] {upstream} {size} {rt - 0.001:.3f} 200 {rid}')
    TL.add(ING, tt, line, B)
    tt += dt.timedelta(seconds=R.randint(12, 28), milliseconds=R.randint(0, 999))

if __name__ == "__main__":
    stats = TL.render(ROOT)
    for f, (a, b) in sorted(stats.items()):
        print(f"{f}: {a} attack, {b} benign lines")
    print("R7", R7, "R8", R8, "registered", REGISTERED.isoformat(), "overwrite", OVERWRITE.isoformat())
