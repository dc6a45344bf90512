"""The dashboard on the admin listener: its static files (CSP, types, ETag,
no way out of dashboard_dir), the live stream GET /api/stream (API key,
stats, a room's events), and the page itself in headless Chromium."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import API_KEY, ROOT, wait_until

DASHBOARD = os.path.join(ROOT, "dashboard")
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.path.join(ROOT, "tests", "node", "node_modules")


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    from conftest import Herald
    h = Herald(tmp_path_factory.mktemp("dash"), extra=f"dashboard_dir = {DASHBOARD}")
    try:
        h.start()
        yield h
    finally:
        h.stop()


def raw_get(port, target, headers=""):
    """A GET sent as written (no client-side normalisation of the path)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return int(data.split(b" ", 2)[1])


def test_index_and_assets(dash):
    r = requests.get(dash.admin_url("/"), timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script src=\"/assets/app.js\"" in r.text
    assert "<script>" not in r.text and "style=" not in r.text    # nothing inline
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css"),
                        ("favicon.svg", "image/svg+xml")):
        a = requests.get(dash.admin_url(f"/assets/{name}"), timeout=5)
        assert a.status_code == 200, name
        assert a.headers["content-type"].startswith(ctype)
        with open(os.path.join(DASHBOARD, name), "rb") as f:
            assert a.content == f.read()
        assert a.headers["cache-control"] == "no-cache"
        again = requests.get(dash.admin_url(f"/assets/{name}"), timeout=5,
                             headers={"If-None-Match": a.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_no_way_out_of_the_directory(dash, tmp_path):
    for target in ("/assets/../herald.conf", "/assets/..%2f..%2fetc%2fpasswd", "/assets/%2e%2e/x.js",
                   "/assets/.hidden.js", "/assets/sub/app.js", "/assets/app.js%00.css",
                   "/assets/", "/assets/missing.js", "/assets/README", "/assets/app.js.bak",
                   "/index.html", "/../etc/passwd", "/assets//etc/passwd.js"):
        assert raw_get(dash.admin_port, target) in (400, 404), target
    r = requests.post(dash.admin_url("/"), timeout=5)
    assert r.status_code == 405
    # only on the admin listener
    assert requests.get(f"http://127.0.0.1:{dash.port}/", timeout=5).status_code == 404


def test_stream_needs_the_key(dash):
    assert requests.get(dash.admin_url("/api/stream"), timeout=5).status_code == 401
    r = requests.get(dash.admin_url("/api/stream"), timeout=5, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = dash.api("GET", "/api/stream?room=bad%20room")
    assert r.status_code == 400


def read_events(resp, want, timeout=10):
    """Reads server-sent events until want(events) holds; returns them."""
    events, name, deadline = [], None, time.time() + timeout
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if want(events):
                return events
        if time.time() > deadline:
            break
    raise AssertionError(f"stream ended or timed out: {events[-5:]}")


def test_stream_sends_stats_and_room_events(dash):
    room = "race:dash1"
    for i in range(3):
        assert dash.publish(room, "odds", {"i": i}).status_code == 200
    with requests.get(dash.admin_url(f"/api/stream?room={room}"), stream=True, timeout=10,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        # the room's last messages first, then stats
        got = read_events(r, lambda ev: sum(1 for n, _ in ev if n == "message") >= 3 and
                          any(n == "stats" for n, _ in ev))
        msgs = [d for n, d in got if n == "message"]
        assert [m["seq"] for m in msgs] == [1, 2, 3]
        assert msgs[0] == {"room": room, "seq": 1, "event": "odds", "data": {"i": 0}, "ts": msgs[0]["ts"]}
        stats = [d for n, d in got if n == "stats"][0]
        assert stats["hub"] == "up" and stats["db"] == "writable"
        assert "connections" in stats["stats"] and "user_connections" not in stats["stats"]
        # live: a new publish arrives, with data that spans lines
        assert requests.post(dash.admin_url("/api/publish"), timeout=5,
                             headers={"Authorization": f"Bearer {API_KEY}",
                                      "Content-Type": "application/json"},
                             data='{"room": "race:dash1", "event": "odds", "data": {\n"i": 3\n}}').status_code == 200
        got = read_events(r, lambda ev: any(n == "message" for n, _ in ev))
        assert [d for n, d in got if n == "message"][0]["data"] == {"i": 3}
    # the stream's connection is gone once the reader went
    assert wait_until(lambda: dash.api("GET", "/health").status_code == 200)


@pytest.mark.skipif(NODE is None or not os.access(CHROMIUM, os.X_OK) or
                    not os.path.isdir(os.path.join(NODE_MODULES, "puppeteer-core")),
                    reason="node, chromium or puppeteer-core missing: run contrib/setup.sh")
def test_dashboard_in_chromium(dash, tmp_path):
    """Signs in, sees the figures move while publishes run, watches a room,
    kicks a connection from the page; saves a screenshot."""
    shot = os.environ.get("HERALD_DASHBOARD_SCREENSHOT", str(tmp_path / "dashboard.png"))
    env = {**os.environ, "HERALD_ADMIN_URL": dash.admin_url(""), "HERALD_WS_URL": dash.ws_url(),
           "HERALD_API_KEY": API_KEY, "CHROMIUM": CHROMIUM, "HERALD_SCREENSHOT": shot}
    # its own process group, so that Chromium goes too if it hangs
    p = subprocess.Popen([NODE, os.path.join(ROOT, "tests", "js", "dashboard.mjs")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        pytest.fail("dashboard test timed out: " + out + err)
    assert p.returncode == 0, out + err + dash.read_log()
    assert os.path.getsize(shot) > 10000
