"""Scenario a: stolen MLflow credentials -> registry enumeration -> bulk model download.

Writes samples/scenarios/a-stolen-mlflow-credentials/{mlflow/mlflow-access.log,minio/audit.log}.
Run: python3 samples/scenarios/tools/gen_a.py
"""

import datetime as dt
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(__file__))
from common import Timeline, etag_of, gunicorn, hexid, minio, rnd, t  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "a-stolen-mlflow-credentials")
DAY = 26
R = rnd(20261126_1)
TL = Timeline()
ms = dt.timedelta(milliseconds=1)
sec = dt.timedelta(seconds=1)

MLF = "mlflow/mlflow-access.log"
MIO = "minio/audit.log"
CLIENT = "mlflow-python-client/3.17.2"
ATTACKER_CLIENT = "mlflow-python-client/2.19.0"
REQUESTS = "python-requests/2.32.3"
ATTACKER = "203.0.113.45"
MLFLOW_POD = "10.244.2.15"
DEPLOYMENT = "5b7e0c3a-91d4-4c2f-8a6e-2f4d9b1c7e30"
BOTO = ("Boto3/1.35.60 md/Botocore#1.35.60 ua/2.0 os/linux#6.1.112-124.190.amzn2023.x86_64 "
        "md/arch#x86_64 lang/python#3.11.10 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.60")
MINIO_GO = "MinIO (linux; amd64) minio-go/v7.0.80"
CHUNK = 8 * 1024 * 1024  # boto3 TransferConfig multipart_chunksize / threshold


def mlf(ts, ip, user, method, uri, status, size, ua, label):
    TL.add(MLF, ts, gunicorn(ts, ip, user, method, uri, status, size, ua), label)


def mio(ts, label, *a, **k):
    TL.add(MIO, ts, minio(ts, DEPLOYMENT, *a, **k), label)


def proxy_put(ts, key, size, label):
    """The tracking server stores an uploaded artifact in MinIO (small file: one PutObject)."""
    mio(ts - 40 * ms, label, "PutObject", "mlflow-artifacts", key, 200, size, 0,
        18_000_000 + size * 3, MLFLOW_POD, BOTO, "mlflow-tracking", etag=etag_of(key))


def proxy_list(ts, prefix, nkeys, label):
    mio(ts - 15 * ms, label, "ListObjectsV2", "mlflow-artifacts", None, 200, 0, 420 + 260 * nkeys,
        3_100_000, MLFLOW_POD, BOTO, "mlflow-tracking",
        query={"delimiter": "/", "encoding-type": "url", "list-type": "2", "prefix": prefix})


def proxy_get(ts_start, key, size, label, ctype="application/octet-stream"):
    """boto3 download_file as MLflow's artifact proxy does it: HeadObject, then one GetObject
    (small files) or ranged 8 MiB GetObjects on 10 threads (files above 8 MiB).
    Returns the time the proxy has the whole file."""
    tt = ts_start
    mio(tt, label, "HeadObject", "mlflow-artifacts", key, 200, 0, 0, 1_900_000, MLFLOW_POD, BOTO,
        "mlflow-tracking", content_type=ctype, etag=etag_of(key))
    tt += 3 * ms
    if size < CHUNK:
        d = 2_000_000 + size // 300
        mio(tt + dt.timedelta(microseconds=d // 1000), label, "GetObject", "mlflow-artifacts", key,
            200, 0, size, d, MLFLOW_POD, BOTO, "mlflow-tracking", content_type=ctype,
            etag=etag_of(key), ttfb_ns=1_400_000)
        return tt + dt.timedelta(microseconds=d // 1000) + 2 * ms
    n = (size + CHUNK - 1) // CHUNK
    done = tt
    for i in range(n):
        lo = i * CHUNK
        hi = min(size, lo + CHUNK) - 1
        part = hi - lo + 1
        # ten worker threads, ~30 ms per 8 MiB part inside the cluster
        start = tt + (i // 10) * 31 * ms + (i % 10) * 0.4 * ms
        d = 26_000_000 + R.randint(0, 9_000_000)
        end = start + dt.timedelta(microseconds=d // 1000)
        done = max(done, end)
        mio(end, label, "GetObject", "mlflow-artifacts", key, 206, 0, part, d, MLFLOW_POD, BOTO,
            "mlflow-tracking", content_type=ctype, etag=etag_of(key), ttfb_ns=1_800_000,
            req_headers={"Range": f"bytes={lo}-{hi}", "User-Agent": BOTO})
    return done + 3 * ms


# ------------------------------------------------------------------ registry content
SKLEARN = [("MLmodel", 612, "text/plain"), ("conda.yaml", 254, "application/octet-stream"),
           ("python_env.yaml", 122, "application/octet-stream"), ("requirements.txt", 98, "text/plain")]
MODELS = [
    # name, version, experiment id, files (path inside model/, size, content type)
    ("fraud-classifier", 7, 3, SKLEARN + [("model.pkl", 48_318_517, "application/octet-stream")]),
    ("churn-predictor", 5, 5, SKLEARN + [("model.pkl", 21_004_112, "application/octet-stream")]),
    ("credit-risk-gbm", 12, 7, SKLEARN + [("model.pkl", 11_534_336, "application/octet-stream")]),
    ("demand-forecast", 9, 11, SKLEARN + [("python_model.pkl", 314_572_800, "application/octet-stream")]),
    ("image-qc-resnet", 4, 12, SKLEARN + [("data/model.pth", 102_760_448, "application/octet-stream"),
                                           ("data/pickle_module_info.txt", 34, "text/plain")]),
    ("ltv-regressor", 2, 14, SKLEARN + [("model.pkl", 3_145_728, "application/octet-stream")]),
    ("support-bot-lora", 3, 9, [("MLmodel", 1_208, "text/plain"), ("requirements.txt", 311, "text/plain"),
                                ("peft/adapter_config.json", 742, "application/json"),
                                ("peft/adapter_model.safetensors", 671_088_640, "application/octet-stream"),
                                ("components/tokenizer/tokenizer.json", 9_085_698, "application/json"),
                                ("components/tokenizer/tokenizer_config.json", 51_274, "application/json")]),
]
RUNS = {name: hexid(R) for name, *_ in MODELS}


def download_model(start, ip, user, ua, name, version, exp, files, label, bandwidth, log_models_search):
    """mlflow.artifacts.download_artifacts("models:/<name>/<version>") through the artifact proxy,
    as in samples/real/mlflow/mlflow-access.log lines 83-92. Returns the end time."""
    run = RUNS[name]
    tt = start
    mlf(tt, ip, user, "GET", f"/api/2.0/mlflow/model-versions/get-download-uri?name={name}&version={version}",
        200, 63 + len(name) + len(run), ua, label)
    tt += 40 * ms
    mlf(tt, ip, user, "GET", f"/api/2.0/mlflow/runs/get?run_uuid={run}&run_id={run}", 200,
        1800 + R.randint(0, 900), ua, label)
    base = f"{exp}/{run}/artifacts/model"
    dirs = sorted({"/".join(p.split("/")[:-1]) for p, _, _ in files if "/" in p})
    for d in [""] + dirs:
        tt += 35 * ms
        path = base + ("/" + d if d else "")
        n = sum(1 for p, _, _ in files if "/".join(p.split("/")[:-1]) == d) + sum(
            1 for x in dirs if "/".join(x.split("/")[:-1]) == d and x != d)
        proxy_list(tt, f"{path}/", n, label)
        mlf(tt, ip, user, "GET", "/api/2.0/mlflow-artifacts/artifacts?path=" + path.replace("/", "%2F"),
            200, 120 + 95 * n, ua, label)
    # files are fetched by a thread pool; each request: proxy fetch from MinIO, then send to the client
    tt += 60 * ms
    workers = [tt] * 4
    end = tt
    for i, (p, size, ctype) in enumerate(files):
        w = min(range(4), key=lambda k: workers[k])
        begin = workers[w] + R.randint(2, 9) * ms
        key = f"{base}/{p}"
        fetched = proxy_get(begin, key, size, label, ctype)
        sent = fetched + dt.timedelta(seconds=size / bandwidth) + R.randint(5, 30) * ms
        mlf(sent, ip, user, "GET", f"/api/2.0/mlflow-artifacts/artifacts/{key}", 200, size, ua, label)
        workers[w] = sent
        end = max(end, sent)
    if log_models_search:
        end += 30 * ms
        mlf(end, ip, user, "POST", "/api/2.0/mlflow/logged-models/search", 200, 2, ua, label)
    return end


def run_with_metrics(start, ip, user, ua, exp, metrics, artifacts, label):
    """A tracking run as the 3.x client logs it (samples/real/mlflow-auth lines 11-21)."""
    run = hexid(R)
    tt = start
    mlf(tt, ip, user, "POST", "/api/2.0/mlflow/runs/create", 200, 870 + R.randint(0, 40), ua, label)
    tt += 400 * ms
    mlf(tt, ip, user, "POST", "/api/2.0/mlflow/runs/log-batch", 200, 2, ua, label)
    for _ in range(metrics):
        tt += R.randint(900, 4000) * ms
        mlf(tt, ip, user, "POST", "/api/2.0/mlflow/runs/log-metric", 200, 2, ua, label)
    for path, size in artifacts:
        tt += 300 * ms
        mlf(tt, ip, user, "GET", f"/api/2.0/mlflow/runs/get?run_uuid={run}&run_id={run}", 200,
            1200 + R.randint(0, 300), ua, label)
        tt += 200 * ms
        key = f"{exp}/{run}/artifacts/{path}"
        proxy_put(tt, key, size, label)
        mlf(tt, ip, user, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{key}", 200, 2, ua, label)
    tt += 300 * ms
    mlf(tt, ip, user, "GET", f"/api/2.0/mlflow/runs/get?run_uuid={run}&run_id={run}", 200,
        1300 + R.randint(0, 300), ua, label)
    tt += 250 * ms
    mlf(tt, ip, user, "POST", "/api/2.0/mlflow/runs/update", 200, 405 + R.randint(0, 10), ua, label)
    return tt


# ================================================================== benign
B = "benign"
A = "attack"

# kubelet readiness probe of the mlflow pod (node address, every 20 s)
tt = t(DAY, "08:55:00", 412)
while tt < t(DAY, "10:25:00"):
    mlf(tt, "10.0.3.14", None, "GET", "/health", 200, 2, "kube-probe/1.31", B)
    tt += dt.timedelta(seconds=20, milliseconds=R.randint(-15, 15))

# nightly hyper-parameter sweep of the CI trainer (credit-risk experiment 7): metrics and a JSON per trial
CI = "10.20.4.17"
mlf(t(DAY, "08:58:02"), CI, "svc-ci-trainer", "GET",
    "/api/2.0/mlflow/experiments/get-by-name?experiment_name=credit-risk", 200, 318, CLIENT, B)
tt = t(DAY, "08:58:03", 120)
for trial in range(4):
    tt = run_with_metrics(tt, CI, "svc-ci-trainer", CLIENT, 7, 6, [("optuna/trial_params.json", 412)], B)
    tt += R.randint(40, 90) * sec

# the training role of the feature pipeline reads the credit-risk shards (bulk reader, MinIO only)
tt = t(DAY, "09:00:41", 230)
mio(tt, B, "ListObjectsV2", "ml-datasets", None, 200, 0, 6921, 3_400_000, "10.244.4.31", MINIO_GO,
    "training-svc", query={"list-type": "2", "prefix": "credit-risk/train/", "delimiter": "",
                           "encoding-type": "url", "fetch-owner": "true"})
for i in range(16):
    tt += R.randint(1800, 2600) * ms
    key = f"credit-risk/train/part-{i:05d}.parquet"
    size = 67_108_864 - R.randint(0, 900_000)
    mio(tt, B, "GetObject", "ml-datasets", key, 200, 0, size, 1_700_000_000 + R.randint(0, 300_000_000),
        "10.244.4.31", MINIO_GO, "training-svc", etag=etag_of(key), ttfb_ns=4_900_000)

# priya works in her notebook (VPN address): a run with metrics and a plot; she checks the champion
PRIYA_VPN = "10.30.2.41"
tt = run_with_metrics(t(DAY, "09:05:12", 310), PRIYA_VPN, "priya", CLIENT, 3, 5,
                      [("plots/roc_curve.png", 58_214)], B)
mlf(tt + 9 * sec, PRIYA_VPN, "priya", "GET", "/api/2.0/mlflow/registered-models/get?name=fraud-classifier",
    200, 2211, CLIENT, B)
mlf(tt + 10 * sec, PRIYA_VPN, "priya", "GET",
    "/api/2.0/mlflow/registered-models/alias?name=fraud-classifier&alias=champion", 200, 611, CLIENT, B)

# release bot promotes churn-predictor v5 to champion (allowlisted identity)
REL = "10.20.4.18"
mlf(t(DAY, "09:18:30"), REL, "mlflow-release-bot", "GET", "/api/2.0/mlflow/registered-models/get?name=churn-predictor",
    200, 1893, CLIENT, B)
mlf(t(DAY, "09:18:31"), REL, "mlflow-release-bot", "GET",
    "/api/2.0/mlflow/model-versions/get?name=churn-predictor&version=5", 200, 702, CLIENT, B)
mlf(t(DAY, "09:18:31"), REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/model-versions/set-tag", 200, 2, CLIENT, B)
mlf(t(DAY, "09:18:32"), REL, "mlflow-release-bot", "POST", "/api/2.0/mlflow/registered-models/alias", 200, 2, CLIENT, B)

# the model deployer rolls churn-predictor@champion out: version history, then the model files
DEP = "10.20.4.19"
mlf(t(DAY, "09:19:40"), DEP, "svc-model-deployer", "GET",
    "/api/2.0/mlflow/registered-models/alias?name=churn-predictor&alias=champion", 200, 702, CLIENT, B)
mlf(t(DAY, "09:19:41"), DEP, "svc-model-deployer", "GET",
    "/api/2.0/mlflow/model-versions/search?filter=name%3D%27churn-predictor%27&max_results=10000", 200, 3412, CLIENT, B)
churn = next(m for m in MODELS if m[0] == "churn-predictor")
download_model(t(DAY, "09:19:42", 200), DEP, "svc-model-deployer", CLIENT, churn[0], churn[1], churn[2],
               churn[3], B, 350e6, True)

# jonas browses runs and plots in the MLflow UI (browser, ajax-api, get-artifact for images)
JONAS = "10.30.2.77"
FF = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
ui_run = hexid(R)
tt = t(DAY, "09:44:05", 90)
for uri, size in [("/", 1164), ("/static-files/static/js/main.8c1f2a7e.js", 9_418_230),
                  ("/static-files/static/css/main.51b0e2d4.css", 301_552),
                  ("POST /ajax-api/2.0/mlflow/experiments/search", 2410),
                  ("/ajax-api/2.0/mlflow/experiments/get?experiment_id=5", 611),
                  ("POST /ajax-api/2.0/mlflow/runs/search", 18_220),
                  (f"/ajax-api/2.0/mlflow/runs/get?run_id={ui_run}", 2402),
                  (f"/ajax-api/2.0/mlflow/metrics/get-history?run_uuid={ui_run}&metric_key=auc", 1380),
                  (f"/ajax-api/2.0/mlflow/artifacts/list?run_uuid={ui_run}&path=plots", 288),
                  (f"/get-artifact?path=plots%2Flift_curve.png&run_uuid={ui_run}", 61_702),
                  (f"/get-artifact?path=plots%2Fconfusion_matrix.png&run_uuid={ui_run}", 44_118),
                  ("/ajax-api/2.0/mlflow/registered-models/get?name=churn-predictor", 1893)]:
    method = "GET"
    if uri.startswith("POST "):
        method, uri = "POST", uri[5:]
    tt += R.randint(300, 9000) * ms
    if uri.startswith("/get-artifact"):
        path = uri.split("path=")[1].split("&")[0].replace("%2F", "/")
        proxy_get(tt - 60 * ms, f"5/{ui_run}/artifacts/{path}", size, B, "image/png")
    mlf(tt, JONAS, "jonas", method, uri, 200, size, FF, B)

# the hourly batch scorer loads fraud-classifier@champion (version 6) at the start of each batch
SCORER = "10.20.6.12"
fraud6 = [(p, size - 1_118_211 if p == "model.pkl" else size, c) for p, size, c in MODELS[0][3]]
RUNS["fraud-classifier@6"] = hexid(R)
for hhmm in ("09:00:05", "09:45:04", "10:15:07"):
    tt = t(DAY, hhmm, R.randint(0, 999))
    mlf(tt, SCORER, "svc-batch-scorer", "GET",
        "/api/2.0/mlflow/registered-models/alias?name=fraud-classifier&alias=champion", 200, 611, CLIENT, B)
    RUNS["fraud-classifier"], keep = RUNS["fraud-classifier@6"], RUNS["fraud-classifier"]
    download_model(tt + 60 * ms, SCORER, "svc-batch-scorer", CLIENT, "fraud-classifier", 6, 3, fraud6, B, 300e6, True)
    RUNS["fraud-classifier"] = keep

# the image-qc training job streams its WebDataset shards (bulk reader, MinIO only)
tt = t(DAY, "09:10:02", 118)
mio(tt, B, "ListObjectsV2", "ml-datasets", None, 200, 0, 61_234, 9_800_000, "10.244.4.37", MINIO_GO,
    "training-svc", query={"list-type": "2", "prefix": "image-qc/train/", "delimiter": "",
                           "encoding-type": "url", "fetch-owner": "true"})
for i in range(240):
    tt += R.randint(7000, 12000) * ms
    key = f"image-qc/train/shard-{i:06d}.tar"
    size = 33_554_432 - R.randint(0, 2_000_000)
    mio(tt, B, "GetObject", "ml-datasets", key, 200, 0, size, 700_000_000 + R.randint(0, 200_000_000),
        "10.244.4.37", MINIO_GO, "training-svc", etag=etag_of(key), ttfb_ns=3_100_000)

# the data pipeline lands new credit-risk shards (pipeline identity)
tt = t(DAY, "09:52:10")
for i in range(4):
    tt += R.randint(2000, 4000) * ms
    key = f"credit-risk/incoming/2026-11-26/part-{i:05d}.parquet"
    mio(tt, B, "PutObject", "ml-datasets", key, 200, 33_554_432 - R.randint(0, 500_000), 0,
        900_000_000 + R.randint(0, 100_000_000), "10.244.4.52", MINIO_GO, "ml-data-pipeline", etag=etag_of(key))

# second CI sweep batch later in the morning
tt = t(DAY, "10:08:20", 40)
for trial in range(2):
    tt = run_with_metrics(tt, CI, "svc-ci-trainer", CLIENT, 7, 6, [("optuna/trial_params.json", 409)], B)
    tt += R.randint(40, 90) * sec

# response: the MLflow admin resets priya's password from inside the pod (kubectl exec, loopback)
mlf(t(DAY, "10:02:11"), "127.0.0.1", "admin", "GET", "/api/2.0/mlflow/users/get?username=priya", 200, 54, REQUESTS, B)
mlf(t(DAY, "10:02:19"), "127.0.0.1", "admin", "PATCH", "/api/2.0/mlflow/users/update-password", 200, 3, REQUESTS, B)
# priya signs in again with the new password from the VPN
mlf(t(DAY, "10:11:48"), PRIYA_VPN, "priya", "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=fraud-detection",
    200, 322, CLIENT, B)

# ================================================================== attack
# 1. the stolen credentials are tried (first with the account name from the leaked file, then the login)
mlf(t(DAY, "09:31:04"), ATTACKER, "priya.sharma", "GET", "/api/2.0/mlflow/users/current", 401, 137, REQUESTS, A)
mlf(t(DAY, "09:31:09"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/users/current", 200, 74, REQUESTS, A)
# 2. enumeration: all accounts, all experiments, the whole model registry
mlf(t(DAY, "09:31:38"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/users/list", 200, 1893, REQUESTS, A)
mlf(t(DAY, "09:31:52"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/experiments/search?max_results=1000", 200, 5210,
    REQUESTS, A)
mlf(t(DAY, "09:32:20"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/registered-models/search?max_results=1000", 200,
    11_873, ATTACKER_CLIENT, A)
# 3. bulk download: the newest version of every registered model, one after the other
tt = t(DAY, "09:32:24", 510)
for name, version, exp, files in MODELS:
    tt = download_model(tt, ATTACKER, "priya", ATTACKER_CLIENT, name, version, exp, files, A, 45e6, False)
    tt += R.randint(150, 600) * ms
ATTACK_END = tt
# 4. after the password reset the attacker comes back and is refused
mlf(t(DAY, "10:14:31"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/users/current", 401, 137, REQUESTS, A)
mlf(t(DAY, "10:14:36"), ATTACKER, "priya", "GET", "/api/2.0/mlflow/users/current", 401, 137, REQUESTS, A)

if __name__ == "__main__":
    stats = TL.render(ROOT)
    for f, (a, b) in sorted(stats.items()):
        print(f"{f}: {a} attack, {b} benign lines")
    print("attack download phase ends", ATTACK_END.isoformat())
    print("runs:", RUNS)
