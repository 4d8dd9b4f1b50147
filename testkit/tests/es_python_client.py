"""Drives testkit's fake Elasticsearch with the official Python client
(elasticsearch>=9), the way applications and shippers use it, and checks
that the client understands every answer: cluster info, ping, health,
index templates, client.bulk with per-item results, helpers.bulk raising
BulkIndexError for an item the server refused, data streams, gzip bodies,
count/get/refresh, and a 401 surfaced as AuthenticationException.

Usage: python es_python_client.py URL USER PASSWORD
Prints one JSON line with what it saw; exits non-zero on any mismatch.
"""

import json
import sys

from elasticsearch import AuthenticationException, Elasticsearch, helpers

url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
es = Elasticsearch(url, basic_auth=(user, password), request_timeout=10)
seen = {}

info = es.info()
assert info["version"]["number"].startswith("9."), info
assert info["tagline"] == "You Know, for Search", info
assert es.ping() is True
assert es.cluster.health()["status"] == "green"
seen["version"] = info["version"]["number"]

es.indices.put_index_template(
    name="py-template",
    index_patterns=["py-ds-*"],
    data_stream={},
    priority=300,
    template={"mappings": {"properties": {"@timestamp": {"type": "date"}}}},
)
t = es.indices.get_index_template(name="py-template")
assert t["index_templates"][0]["name"] == "py-template", t
assert t["index_templates"][0]["index_template"]["index_patterns"] == ["py-ds-*"], t

# client.bulk: per-item answers in request order, errors flag, 409 on create.
r = es.bulk(
    operations=[
        {"create": {"_index": "py-index", "_id": "1"}},
        {"a": 1},
        {"index": {"_index": "py-index", "_id": "2"}},
        {"a": 2},
        {"create": {"_index": "py-index", "_id": "1"}},
        {"a": 3},
        {"update": {"_index": "py-index", "_id": "2"}},
        {"doc": {"b": 2}},
        {"delete": {"_index": "py-index", "_id": "missing"}},
        {"index": {"_index": "py-index"}},
        {"auto": True},
    ]
)
assert r["errors"] is True, r
statuses = [list(i.values())[0]["status"] for i in r["items"]]
assert statuses == [201, 201, 409, 200, 404, 201], statuses
assert r["items"][2]["create"]["error"]["type"] == "version_conflict_engine_exception", r
assert len(r["items"][5]["index"]["_id"]) == 20, r
seen["bulk_statuses"] = statuses

# helpers.bulk: the refused item is surfaced as BulkIndexError.
actions = [{"_index": "py-helpers", "_id": str(i), "_source": {"n": i}} for i in range(100)]
bad = {"_index": "py-helpers", "_id": "bad", "_source": {"n": "FAIL-ME"}}
try:
    helpers.bulk(es, actions + [bad], chunk_size=30)
    raise AssertionError("helpers.bulk should raise BulkIndexError")
except helpers.BulkIndexError as e:
    assert len(e.errors) == 1, e.errors
    err = e.errors[0]["index"]
    assert err["_id"] == "bad", err
    assert err["status"] == 400, err
    assert err["error"]["type"] == "document_parsing_exception", err
    seen["bulk_index_error"] = err["error"]["type"]

ok, errors = helpers.bulk(es, actions, raise_on_error=False, stats_only=True)
assert (ok, errors) == (100, 0), (ok, errors)

# A data stream from the template: create only.
ok, _ = helpers.bulk(
    es,
    [
        {"_op_type": "create", "_index": "py-ds-app", "_source": {"@timestamp": "2025-01-01T00:00:00Z", "m": i}}
        for i in range(5)
    ],
)
assert ok == 5

es.indices.refresh(index="py-helpers")
assert es.count(index="py-helpers")["count"] == 100
assert es.get(index="py-helpers", id="5")["_source"] == {"n": 5}

# gzip request bodies.
gz = Elasticsearch(url, basic_auth=(user, password), http_compress=True)
r = gz.bulk(operations=[{"index": {"_index": "py-gzip", "_id": "g"}}, {"zipped": True}])
assert r["errors"] is False, r

# Wrong credentials: 401 surfaced as AuthenticationException.
try:
    Elasticsearch(url, basic_auth=(user, "wrong")).info()
    raise AssertionError("expected AuthenticationException")
except AuthenticationException as e:
    assert e.meta.status == 401
    assert e.body["error"]["type"] == "security_exception", e.body
    seen["auth_error"] = e.body["error"]["reason"]

print(json.dumps(seen))
