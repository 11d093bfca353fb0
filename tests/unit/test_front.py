"""The front proxy's configuration (hutch.serve.front): routes, timeouts, JSON errors."""

import json
import pathlib
import subprocess

import pytest

from hutch.inifile import read_ini
from hutch.serve import front
from hutch.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "apache" / "haproxy.cfg"


def plan(**changes):
    values = {
        "host": "127.0.0.1",
        "port": 8080,
        "mount_point": "/gateway",
        "gateway_port": 9001,
        "events_port": 9002,
        "gateway_timeout": 60,
        "stream_lifetime": 300.0,
        "max_connections": 9900,
    }
    return front.FrontPlan(**{**values, **changes})


def section(text, header):
    """The lines of one section (``backend events``) of a haproxy.cfg, stripped."""
    lines = text.splitlines()
    start = lines.index(header)
    body = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        if line.strip() and not line.strip().startswith("#"):
            body.append(line.strip())
    return body


def test_events_under_the_mount_point_go_to_the_event_servers_everything_else_to_apache():
    """A connection goes where its first complete head goes; anything else reaches Apache untouched."""
    text = front.front_config(plan())
    frontend = section(text, "frontend hutch")
    assert "bind 127.0.0.1:8080" in frontend and "mode tcp" in frontend
    assert f"tcp-request inspect-delay {front.HEAD_WAIT}s" in frontend
    assert "tcp-request content accept if HTTP" in frontend
    assert frontend[-2:] == [
        "use_backend events if HTTP { path_beg /gateway/events/ }",
        "default_backend gateway",
    ]
    assert "mode tcp" in section(text, "backend gateway")  # Apache reads (and refuses) heads itself
    events = section(text, "backend events")
    assert "mode tcp" not in events  # HTTP there: capacity, the mount point, one request per connection
    assert "http-after-response set-header Connection close" in events
    assert "server events 127.0.0.1:9002 check " + front.CHECK + " maxconn 9644" in events
    # the event servers serve /events/{exchange}: the mount point is taken off
    assert r"http-request replace-path ^/gateway(/events/.*) \1" in events
    gateway = section(text, "backend gateway")
    assert "server gateway 127.0.0.1:9001" in gateway


def test_at_the_root_nothing_is_rewritten():
    text = front.front_config(plan(mount_point="/"))
    assert "use_backend events if HTTP { path_beg /events/ }" in section(text, "frontend hutch")
    assert not any("replace-path" in line for line in section(text, "backend events"))


def test_streams_outlive_their_lifetime_at_the_front_and_requests_get_the_socket_timeout():
    text = front.front_config(plan(stream_lifetime=300.0, gateway_timeout=75))
    assert "timeout server 360s" in section(text, "backend events")
    assert "timeout server 75s" in section(text, "backend gateway")
    assert "timeout client 360s" in section(text, "defaults")


def test_an_event_server_whose_broker_is_down_stays_in_the_rotation():
    """Its 503 is the event server's JSON answer; only one that does not answer is taken out."""
    assert "http-check expect rstatus ^(200|503)$" in section(front.front_config(plan()), "backend events")


def test_apache_is_never_taken_out():
    """The gateway has nowhere else to go: a health check timing out while every daemon thread waits
    on a restarting broker would have HAProxy close connections without an answer."""
    gateway = section(front.front_config(plan()), "backend gateway")
    assert not any("check" in line for line in gateway)


def test_haproxys_own_errors_are_the_contracts_json():
    lines = [line for line in section(front.front_config(plan()), "defaults") if line.startswith("errorfile")]
    assert lines == [
        f"errorfile {status} {front.ERRORS_DIRECTORY}/{status}.http"
        for status in (400, 408, 500, 502, 503, 504)
    ]
    for status in front.FRONT_ERRORS:
        shipped = (front.ERRORS_DIRECTORY / f"{status}.http").read_bytes()
        assert shipped == front.error_file(status), status  # apache/haproxy-errors is what front writes
        head, _, body = shipped.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()) and b"Content-Type: application/json" in head
        assert (b"Retry-After: 5\r\n" in head) == (status == 503)
        assert f"Content-Length: {len(body)}".encode() in head
        answer = json.loads(body)
        assert set(answer) == {"error", "detail"} and answer["error"] and answer["detail"]


def test_header_names_keep_the_case_the_gateway_gave_them():
    text = front.front_config(plan())
    assert "h1-case-adjust www-authenticate WWW-Authenticate" in section(text, "global")
    assert "option h1-case-adjust-bogus-client" in section(text, "frontend hutch")


def test_connections_fit_in_the_descriptor_limit():
    assert front.max_connections(20000) == (20000 - front.FD_RESERVE) // 2
    assert front.max_connections(1024) == (1024 - front.FD_RESERVE) // 2
    assert front.max_connections(10**9) == front.MAX_CONNECTIONS
    assert "maxconn 9900" in section(front.front_config(plan()), "global")


def test_as_root_haproxy_drops_to_the_daemon_user():
    assert {"user www-data", "group www-data"} <= set(
        section(front.front_config(plan(user="www-data")), "global")
    )
    assert not any(line.startswith("user ") for line in section(front.front_config(plan()), "global"))


def test_haproxy_accepts_the_configuration(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(front.front_config(plan()))  # -c parses and checks, it binds nothing
    done = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_haproxy_refuses_a_broken_one(tmp_path):
    """The check above can fail: a config HAProxy cannot parse is refused, with its words."""
    proxy = front.FrontProxy(plan(port=70000), tmp_path)  # no such port
    with pytest.raises(front.FrontError, match="haproxy refused"):
        proxy.check()


def shipped_plan():
    raw, _here = read_ini(str(ROOT / "production.ini"))  # not parsed: that would create its key files
    return front.FrontPlan(
        host="",
        port=80,
        mount_point="/gateway",
        gateway_port=8080,
        events_port=8081,
        gateway_timeout=60,
        stream_lifetime=float(raw.get("events_max_lifetime", Settings.events_max_lifetime)),
        max_connections=20000,
        user="haproxy",
        errors_directory="/srv/hutch/apache/haproxy-errors",
    )


def test_the_shipped_front_for_a_system_apache_is_what_front_config_writes():
    """apache/haproxy.cfg: Apache on 127.0.0.1:8080, event servers on 8081, production.ini's lifetime."""
    assert front.front_config(shipped_plan()) in SHIPPED.read_text()


def test_haproxy_accepts_the_shipped_front(tmp_path):
    path = tmp_path / "haproxy.cfg"  # the checkout stands in for /srv/hutch
    path.write_text(SHIPPED.read_text().replace("/srv/hutch/", f"{ROOT}/"))
    done = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_streams_never_take_the_connections_requests_need():
    """At the front's limit a new viewer gets 503 with Retry-After at once (never a wait, never a 200
    that delivers nothing); a request still finds a connection: viewers never starve a broadcast."""
    text = front.front_config(plan(max_connections=9900))
    events = section(text, "backend events")
    slots = 9900 - front.REQUEST_SLOTS
    assert events[-1].endswith(f" maxconn {slots}")  # the backstop when viewers arrive together
    full = next(line for line in events if line.startswith("http-request return status 503 "))
    assert full.endswith(f"if {{ be_conn gt {slots} }}")  # be_conn counts the one asking
    assert f"hdr Retry-After {front.RETRY_AFTER} " in full
    body = full.split("string '", 1)[1].split("'", 1)[0]
    assert json.loads(body)["error"] == "too_many_streams"
    assert f"timeout queue {front.STREAM_QUEUE}s" in section(text, "defaults")
    assert front.stream_slots(100) == 1
