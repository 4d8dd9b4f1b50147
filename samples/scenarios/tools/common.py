"""Line builders shared by the scenario generators.

Each function renders one log line in the exact shape the component writes
(copied from samples/real and samples/handwritten; see the README of each
scenario for the source of every shape). Times are timezone-aware UTC
datetimes. Nothing here knows about detection rules.
"""

import datetime as dt
import hashlib
import json
import random

UTC = dt.timezone.utc


def t(day, hms, ms=0):
    """2026-11-<day> hh:mm:ss.mmm UTC."""
    h, m, s = (int(x) for x in hms.split(":"))
    return dt.datetime(2026, 11, day, h, m, s, ms * 1000, tzinfo=UTC)


def hexid(rng, n=32):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def uuid4(rng):
    h = hexid(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


# ------------------------------------------------------------------ MLflow
def gunicorn(ts, ip, user, method, uri, status, size, ua, referer="-"):
    """gunicorn default access format, as `mlflow server --gunicorn-opts
    "--access-logfile -"` writes it (samples/real/mlflow-auth/mlflow-auth-access.log)."""
    return (
        f'{ip} - {user or "-"} [{ts.strftime("%d/%b/%Y:%H:%M:%S +0000")}] '
        f'"{method} {uri} HTTP/1.1" {status} {size} "{referer}" "{ua}"'
    )


# --------------------------------------------------------------- Jupyter
def jupyter(ts, level, msg, app="ServerApp"):
    """Jupyter Server log line (samples/real/jupyter/jupyter-server-info.log)."""
    return f"[{level} {ts.strftime('%Y-%m-%d %H:%M:%S')}.{ts.microsecond // 1000:03d} {app}] {msg}"


# ------------------------------------------------------------------- Ray
def ray_line(ts, level, origin, msg):
    """Ray Python component log line (dashboard.log, dashboard_agent.log, job-driver)."""
    return f"{ts.strftime('%Y-%m-%d %H:%M:%S')},{ts.microsecond // 1000:03d}\t{level} {origin} -- {msg}"


def ray_access(logged, started, ip, method, path, status, size, us, ua):
    """aiohttp access line of the Ray dashboard (samples/real/ray/ray-dashboard.log):
    the record time is when the response finished, the bracketed time when the request started."""
    return ray_line(
        logged,
        "INFO",
        "web_log.py:229",
        f"{ip} [{started.strftime('%d/%b/%Y:%H:%M:%S +0000')}] '{method} {path} HTTP/1.1' "
        f"{status} {size} bytes {us} us '-' '{ua}'",
    )


def ray_event(rng, ts, hostname, pid, message, submission_id, severity="INFO"):
    """events/event_JOBS.log record (samples/real/ray/session-logs/events/event_JOBS.log)."""
    eid = "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(36))
    d = {
        "event_id": eid,
        "source_type": "JOBS",
        "source_hostname": hostname,
        "source_pid": pid,
    }
    if severity != "INFO":
        d["severity"] = severity
    d["message"] = message
    d["timestamp"] = str(int(ts.timestamp()))
    d["custom_fields"] = {"submission_id": submission_id}
    if severity == "INFO":
        d["severity"] = severity
    d["label"] = ""
    return json.dumps(d)


# --------------------------------------------------------------- MinIO
MINIO_SERVER = "MinIO/RELEASE.2024-11-07T00-52-20Z"


def minio_request_id(ts):
    # MinIO request ids are the request's UnixNano in upper-case hex.
    ns = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
    return f"{ns:X}"


def minio(ts, deployment, api, bucket, obj, status_code, rx, tx, dur_ns, remote, ua, access_key,
          parent="minioadmin", host="minio.ml-storage.svc.cluster.local:9000", query=None,
          req_headers=None, content_type="application/octet-stream", etag=None, ttfb_ns=None):
    """One MinIO audit record (webhook target), shape of samples/handwritten/minio/audit.log."""
    status = {200: "OK", 204: "No Content", 206: "Partial Content", 403: "Forbidden",
              404: "Not Found"}[status_code]
    a = {"name": api, "bucket": bucket}
    if obj is not None:
        a["object"] = obj
    a.update({"status": status, "statusCode": status_code, "rx": rx, "tx": tx})
    if ttfb_ns is not None:
        a["txHeaders"] = 300 + len(content_type)
        a["timeToFirstByte"] = f"{ttfb_ns}ns"
        a["timeToFirstByteInNS"] = str(ttfb_ns)
    a["timeToResponse"] = f"{dur_ns}ns"
    a["timeToResponseInNS"] = str(dur_ns)
    rid = minio_request_id(ts)
    path = f"/{bucket}/" + (obj if obj is not None else "")
    rec = {
        "version": "1",
        "deploymentid": deployment,
        "time": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}{(int(rid, 16) % 1000):03d}Z",
        "event": "",
        "trigger": "incoming",
        "api": a,
        "remotehost": remote,
        "requestID": rid,
        "userAgent": ua,
        "requestPath": path,
        "requestHost": host,
    }
    if query:
        rec["requestQuery"] = query
    if req_headers:
        rec["requestHeader"] = req_headers
    rh = {"Accept-Ranges": "bytes"}
    if api in ("GetObject", "HeadObject"):
        rh["Content-Length"] = str(tx if api == "GetObject" else 0)
        rh["Content-Type"] = content_type
        if etag:
            rh["ETag"] = f'"{etag}"'
    elif api == "PutObject":
        rh["Content-Length"] = "0"
        if etag:
            rh["ETag"] = f'"{etag}"'
    elif api.startswith("List"):
        rh["Content-Length"] = str(tx)
        rh["Content-Type"] = "application/xml"
    rh.update({
        "Server": MINIO_SERVER,
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "Vary": "Origin, Accept-Encoding",
        "X-Amz-Request-Id": rid,
        "X-Content-Type-Options": "nosniff",
        "X-Xss-Protection": "1; mode=block",
    })
    rec["responseHeader"] = rh
    rec["accessKey"] = access_key
    rec["parentUser"] = parent
    return json.dumps(rec, separators=(",", ":"))


def etag_of(key):
    return hashlib.md5(key.encode()).hexdigest()


# ---------------------------------------------------------- Kubernetes audit
def k8s_audit(rng, ts, verb, uri, user, groups, source_ip, ua, obj_ref, code, level="Metadata",
              stage="ResponseComplete", extra=None, uid=None, request_object=None,
              response_object=None, reason=None, failure_message=None, latency_ms=7,
              impersonated=None):
    """audit.k8s.io/v1 Event as the log backend writes it (samples/handwritten/kubernetes/audit.log)."""
    u = {"username": user}
    if uid:
        u["uid"] = uid
    u["groups"] = groups
    if extra:
        u["extra"] = extra
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": uuid4(rng),
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": u,
    }
    if impersonated:
        ev["impersonatedUser"] = impersonated
    ev["sourceIPs"] = [source_ip]
    ev["userAgent"] = ua
    if obj_ref is not None:
        ev["objectRef"] = obj_ref
    rs = {"metadata": {}}
    if failure_message:
        rs.update({"status": "Failure", "message": failure_message, "reason": "Forbidden",
                   "details": {"kind": obj_ref.get("resource") if obj_ref else ""}})
    rs["code"] = code
    ev["responseStatus"] = rs
    if request_object is not None:
        ev["requestObject"] = request_object
    if response_object is not None:
        ev["responseObject"] = response_object
    end = ts + dt.timedelta(milliseconds=latency_ms, microseconds=rng.randint(0, 999))
    ev["requestReceivedTimestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ev["stageTimestamp"] = end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if code in (401, 403):
        ann = {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
    else:
        ann = {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": reason or ""}
    ev["annotations"] = ann
    s = json.dumps(ev, separators=(",", ":"))
    # Go's encoder escapes these in strings.
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


# -------------------------------------------------------------- CloudTrail
def cloudtrail(rng, ts, identity, source, name, region, ip, ua, req, resp=None, extra=None,
               resources=None, read_only=True, data_event=False, error=None, vpce=None,
               event_version="1.11", host=None):
    """One CloudTrail record, one compact event per line (samples/handwritten/cloudtrail/events.ndjson)."""
    ev = {"eventVersion": event_version, "userIdentity": identity,
          "eventTime": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventSource": source, "eventName": name,
          "awsRegion": region, "sourceIPAddress": ip, "userAgent": ua}
    if error:
        ev["errorCode"], ev["errorMessage"] = error
    ev["requestParameters"] = req
    ev["responseElements"] = resp
    if extra is not None:
        ev["additionalEventData"] = extra
    ev["requestID"] = "".join(rng.choice("0123456789ABCDEF") for _ in range(16))
    ev["eventID"] = uuid4(rng)
    ev["readOnly"] = read_only
    if resources is not None:
        ev["resources"] = resources
    ev["eventType"] = "AwsApiCall"
    ev["managementEvent"] = not data_event
    ev["recipientAccountId"] = "123456789012"
    if vpce:
        ev["vpcEndpointId"] = vpce
        ev["vpcEndpointAccountId"] = "123456789012"
    ev["eventCategory"] = "Data" if data_event else "Management"
    if host:
        ev["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                            "clientProvidedHostHeader": host}
    return json.dumps(ev, separators=(",", ":"))


def write(path, lines):
    import os
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for line in lines:
            f.write(line + "\n")


def sort_lines(items):
    """items: (datetime, seq, line) -> lines in time order (stable)."""
    return [line for _, _, line in sorted(items, key=lambda x: (x[0], x[1]))]


class Timeline:
    """Collects (time, line, label) per file; label is 'attack' or 'benign'."""

    def __init__(self):
        self.files = {}
        self.seq = 0

    def add(self, file, ts, line, label):
        self.seq += 1
        self.files.setdefault(file, []).append((ts, self.seq, line, label))

    def render(self, root):
        stats = {}
        for file, items in self.files.items():
            items.sort(key=lambda x: (x[0], x[1]))
            write(f"{root}/{file}", [i[2] for i in items])
            a = sum(1 for i in items if i[3] == "attack")
            stats[file] = (a, len(items) - a)
        return stats


def rnd(seed):
    return random.Random(seed)
