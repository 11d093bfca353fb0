"""GET /metrics in one process (WebTest): the counters move with the requests and the broker's answers."""

import json
import logging

import webtest

from harness.scrape import moved, samples, value

KEYS = {
    "auth": "keys",
    "auth.key.scraper": "scraper-secret-0123456789",
    "auth.permissions.scraper": "metrics",
    "auth.key.publisher": "publisher-secret-0123456789",
    "auth.permissions.publisher": "broadcast:*",
    "auth.key.admin": "admin-secret-0123456789abc",
    "auth.permissions.admin": "*",
}


def scrape(client):
    response = client.get("/metrics", status=200)
    assert response.content_type == "text/plain"
    return samples(response.text)


def test_the_exposition_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE hutch_http_requests_total counter" in response.text
    assert "# TYPE hutch_publish_confirm_seconds histogram" in response.text


def test_requests_are_counted_by_app_and_status(client, exchange):
    before = scrape(client)
    client.post(f"/broadcast/{exchange}", b"one", status=202)
    client.post(f"/broadcast/{exchange}", b"two", status=202)
    client.post("/broadcast/bad%20name", b"", status=400)
    client.get("/no-such-app", status=404)
    client.get("/openapi.json", status=200)
    after = scrape(client)
    assert moved(before, after, "hutch_http_requests_total", app="openapi", status="200") == 1
    assert not any('app="openapi.json"' in line for line in client.get("/metrics").text.splitlines())
    assert moved(before, after, "hutch_http_requests_total", app="broadcast", status="202") == 2
    assert moved(before, after, "hutch_http_requests_total", app="broadcast", status="400") == 1
    assert moved(before, after, "hutch_http_requests_total", app="other", status="404") == 1
    assert moved(before, after, "hutch_http_request_seconds_count", app="broadcast") == 3


def test_confirms_and_unroutable_messages(client, amqp, exchange):
    before = scrape(client)
    client.post(f"/broadcast/{exchange}", b"nobody listens", status=202)
    client.post(f"/notify/{exchange}.n", b"no queue", status=409)
    amqp.track(exchanges=[f"{exchange}.n"], queues=[f"{exchange}.n.c"])
    client.put(f"/notify/{exchange}.n/queues/c", status=201)
    client.post(f"/notify/{exchange}.n", b"stored", status=202)
    after = scrape(client)
    assert moved(before, after, "hutch_publish_confirm_seconds_count", idiom="broadcast") == 1
    assert moved(before, after, "hutch_publish_confirm_seconds_count", idiom="notify") == 2
    assert moved(before, after, "hutch_unroutable_total", idiom="broadcast") == 1
    assert moved(before, after, "hutch_unroutable_total", idiom="notify") == 1
    # this stack's connections (pika's, and the direct publisher's), and any other test's still open
    assert value(after, "hutch_broker_connected", connection="pika") >= 1
    assert value(after, "hutch_broker_connected", connection="direct") >= 1
    assert value(after, "hutch_broker_blocked", connection="pika") == 0
    assert value(after, "hutch_broker_blocked", connection="direct") == 0


def test_rpc_latency_timeouts_and_no_responder(client, responder, exchange):
    responder(exchange, "echo")
    responder(exchange, "silent", handler=lambda properties, body: [])
    before = scrape(client)
    assert client.post(f"/rpc/{exchange}/echo", b"hi").body == b"hi"
    client.post(f"/rpc/{exchange}/silent", b"x", headers={"X-Timeout": "0.3"}, status=504)
    client.post(f"/rpc/{exchange}/unbound", b"x", status=503)
    client.post(f"/rpc/{exchange}.missing/any", b"x", status=503)
    after = scrape(client)
    assert moved(before, after, "hutch_rpc_seconds_count") == 1
    assert moved(before, after, "hutch_rpc_timeouts_total") == 1
    assert moved(before, after, "hutch_rpc_no_responder_total") == 2
    assert moved(before, after, "hutch_http_requests_total", app="rpc", status="504") == 1


def test_metrics_needs_the_metrics_permission(make_stack):
    client = webtest.TestApp(make_stack(**KEYS), lint=True)
    assert client.get("/metrics", status=401).json["error"] == "unauthorized"
    publisher = {"Authorization": "Bearer publisher-secret-0123456789"}
    refused = client.get("/metrics", headers=publisher, status=403).json
    assert refused["error"] == "forbidden"
    assert refused["detail"] == "The API key 'publisher' lacks the 'metrics' permission."  # no resource
    for secret in ("scraper-secret-0123456789", "admin-secret-0123456789abc"):
        response = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}, status=200)
        assert "hutch_http_requests_total" in response.text
    scraper = {"Authorization": "Bearer scraper-secret-0123456789"}
    assert client.post("/broadcast/t.metrics-only", b"", headers=scraper, status=403)


def test_the_access_log_has_one_json_line_per_request(make_stack, amqp, unique_name, caplog):
    exchange = unique_name()
    amqp.track(exchanges=[exchange])
    client = webtest.TestApp(make_stack(access_log="true"), lint=True)
    with caplog.at_level(logging.INFO, logger="hutch.access"):
        answer = client.post(f"/broadcast/{exchange}", b"x", headers={"Idempotency-Key": "abc-1"}).json
        client.get("/health")
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "hutch.access"]
    assert len(lines) == 2
    published, health = lines
    assert published["idiom"] == "broadcast" and published["exchange"] == exchange
    assert published["status"] == 202 and published["message_id"] == answer["message_id"] == "abc-1"
    assert published["method"] == "POST" and published["latency_ms"] >= 0
    assert health["idiom"] == "health" and health["exchange"] is None and health["status"] == 200


def test_no_access_log_unless_asked(make_stack, caplog):
    client = webtest.TestApp(make_stack(), lint=True)
    with caplog.at_level(logging.INFO, logger="hutch.access"):
        client.get("/health")
    assert [record for record in caplog.records if record.name == "hutch.access"] == []


def test_openmetrics_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_broker_series_are_exported_at_zero_before_their_first_event(client):
    """An absent series reads as "no data", not 0: alerts on reconnects or failures need the zero."""
    exposition = scrape(client)
    for connection in ("pika", "direct"):
        for name in (
            "hutch_broker_connected",
            "hutch_broker_blocked",
            "hutch_broker_reconnects_total",
            "hutch_broker_connect_failures_total",
        ):
            assert (name, (("connection", connection),)) in exposition, (name, connection)
    for idiom in ("broadcast", "notify"):
        assert ("hutch_unroutable_total", (("idiom", idiom),)) in exposition
        assert ("hutch_idempotent_replays_total", (("idiom", idiom),)) in exposition
