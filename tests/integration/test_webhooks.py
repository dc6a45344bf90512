"""Webhook delivery, end to end: the courier POSTs each delivery to real HTTP
receivers on loopback, started here, which check every signature with the
Standard Webhooks scheme (computed here with hmac and hashlib, independently
of herald) and record what arrived. Retries, timeouts, 410, Retry-After, the
circuit breaker, rotation, deletion, kill -9 and volume; and the receiver-side
examples of contrib/webhooks (verify.py imported, verify.js and verify.py run
as receivers) against real deliveries.

Timing: every wait is bounded; the only assertions on time are lower bounds
("not before"), with slack, and orderings that follow from what a receiver
was still doing."""
import base64
import collections
import datetime
import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import HERALDCTL, ROOT, free_ports, poll, proc_title, wait_until

CONTRIB = os.path.join(ROOT, "contrib", "webhooks")
NODE = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)

# One second between retries and a breaker that stays out of the way, so that
# a test runs in seconds; the breaker test sets its own.
FAST = "webhook_retry_schedule = 0,1,1\n"
NO_BREAKER = "webhook_breaker_failures = 1000000\n"

ID_RE = re.compile(r"^msg_[0-9]+$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def load_contrib_verify():
    spec = importlib.util.spec_from_file_location("herald_contrib_verify",
                                                  os.path.join(CONTRIB, "verify.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- signatures, computed here ----------------------------------------------------------

def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signature(secret, msg_id, timestamp, body):
    """base64 HMAC-SHA256 over "id.timestamp.body" with the decoded secret."""
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


# ---- a receiver ----------------------------------------------------------------------------

class Hit:
    """One request as a receiver got it."""

    def __init__(self, headers, body, arrived, wall, peer=None):
        self.headers = headers                        # lower-cased names
        self.peer = peer                              # the client's (address, port)
        self.id = headers.get("webhook-id")
        self.timestamp = headers.get("webhook-timestamp")
        self.signatures = (headers.get("webhook-signature") or "").split()
        self.body = body
        self.arrived = arrived                        # time.monotonic()
        self.wall = wall                              # time.time()
        self.verified_by = []                         # the secret that verifies each signature
        self.status = None                            # what was answered
        self.done = None                              # time.monotonic() once answered

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Hit {self.id} status={self.status} sigs={len(self.signatures)}>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass                    # the courier gave up on a slow answer: expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # the head and the body go out without waiting

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_POST(self):
        rx = self.server.receiver
        arrived, wall = time.monotonic(), time.time()
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        hit = Hit(headers, body, arrived, wall, self.client_address)
        with rx.lock:
            previous = sum(1 for h in rx.hits if h.id == hit.id)
            rx.hits.append(hit)
            rx.check_hit(hit)
        answer = rx.respond(hit, previous)
        if isinstance(answer, int):
            answer = (answer,)
        status, extra, delay = (tuple(answer) + ({}, 0))[:3]
        if delay and rx.stopping.wait(delay):
            return
        data = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"on purpose"}'
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass
        hit.status = status
        hit.done = time.monotonic()


class Receiver:
    """An HTTP server on a free loopback port that verifies and records every
    delivery. respond(hit, previous) says how to answer: a status, or a tuple
    (status, headers, seconds to wait first); previous is how many requests
    with the same webhook-id came before this one."""

    def __init__(self, secrets=(), respond=None):
        self.secrets = list(secrets)
        self.respond = respond or (lambda hit, previous: 200)
        self.hits = []
        self.bad = []           # (what is wrong, hit)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        for attempt in range(5):
            try:
                self.server = _Server(("127.0.0.1", free_ports(1)[0]), _Handler)
                break
            except OSError:
                if attempt == 4:
                    raise
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def check_hit(self, hit):
        """Everything a Standard Webhooks receiver checks (under self.lock)."""
        def bad(why):
            self.bad.append((why, hit))
        if hit.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            bad(f"content-type {hit.headers.get('content-type')!r}")
        if not hit.id or not ID_RE.match(hit.id):
            bad(f"webhook-id {hit.id!r}")
        if not hit.timestamp or not hit.timestamp.isdigit() or \
                abs(int(hit.timestamp) - hit.wall) > 60:
            bad(f"webhook-timestamp {hit.timestamp!r}")
            return
        if not hit.signatures:
            bad("no webhook-signature")
        for sig in hit.signatures:
            version, _, value = sig.partition(",")
            who = [s for s in self.secrets
                   if version == "v1" and
                   hmac.compare_digest(value, signature(s, hit.id, hit.timestamp, hit.body))]
            if not who:
                bad(f"signature {sig!r} verifies with no secret")
            hit.verified_by.append(who[0] if who else None)
        try:
            json.loads(hit.body)
        except ValueError:
            bad("body is not JSON")

    # -- what arrived ----------------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            return list(self.hits)

    def ids(self):
        return [h.id for h in self.snapshot()]

    def wait_hits(self, n, timeout=10):
        """Waits until at least n requests arrived; returns them all."""
        got = wait_until(lambda: len(self.hits) >= n, timeout=timeout, step=0.02)
        hits = self.snapshot()
        assert got, f"{len(hits)} of {n} requests arrived in {timeout} s: {hits[-5:]}"
        return hits

    def wait_ids(self, ids, timeout=10):
        """Waits until every webhook-id of ids arrived at least once."""
        ids = set(ids)
        got = wait_until(lambda: ids <= set(self.ids()), timeout=timeout, step=0.05)
        assert got, f"missing {len(ids - set(self.ids()))} of {len(ids)} ids after {timeout} s"
        return self.snapshot()

    def check(self):
        assert not self.bad, f"receiver on {self.port} saw bad requests: {self.bad[:5]}"

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# ---- fixtures and helpers ------------------------------------------------------------------

def courier_pids(h):
    return [p for p in h.child_pids() if proc_title(p).startswith("heraldd: courier")]


def wait_courier(h, timeout=10):
    pids = wait_until(lambda: courier_pids(h), timeout=timeout)
    assert pids, f"no 'heraldd: courier' process: {[proc_title(p) for p in h.child_pids()]}"
    return pids[0]


@pytest.fixture
def receivers():
    made = []

    def make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()
    for r in made:
        r.check()


@pytest.fixture
def herald(herald_factory):
    h = herald_factory(extra=FAST + NO_BREAKER).start()
    wait_courier(h)
    return h


def add(h, receiver=None, url=None, **body):
    """Registers an endpoint for receiver; a generated secret is handed to it."""
    body.setdefault("url", url or receiver.url)
    body.setdefault("events", ["*"])
    r = h.api("POST", "/api/webhooks", body)
    assert r.status_code == 201, r.text
    wh = r.json()
    if receiver is not None and wh["secret"] not in receiver.secrets:
        receiver.secrets.append(wh["secret"])
    return wh


def publish(h, room, event="e", data=None):
    r = h.publish(room, event, data if data is not None else {})
    assert r.status_code == 200, r.text
    return r.json()["seq"]


def rows(h, wh):
    return h.sqlite("SELECT id, event, room, seq, body, status, attempts FROM webhook_deliveries "
                    f"WHERE endpoint_id = '{wh['id']}' ORDER BY id")


def row_ids(h, wh):
    return [f"msg_{x['id']}" for x in rows(h, wh)]


def deliveries(h, wh, **query):
    q = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **query}.items())
    r = h.api("GET", f"/api/webhooks/{wh['id']}/deliveries?{q}")
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def delivery(h, wh, did):
    for d in deliveries(h, wh):
        if d["id"] == did:
            return d
    return None


def wait_delivery(h, wh, did, status, timeout=10):
    d = poll(lambda: delivery(h, wh, did), lambda d: d is not None and d["status"] == status,
             timeout=timeout, step=0.05)
    assert d is not None and d["status"] == status, f"{did}: wanted {status}, got {d}"
    return d


def wait_all(h, wh, status, n, timeout=20):
    """Waits until the endpoint has n delivery rows, all with status."""
    def done():
        got = h.sqlite("SELECT status, count(*) AS n FROM webhook_deliveries "
                       f"WHERE endpoint_id = '{wh['id']}' GROUP BY status")
        return {x["status"]: x["n"] for x in got}
    counts = poll(done, lambda c: c == {status: n}, timeout=timeout, step=0.1)
    assert counts == {status: n}, counts


def unix(ts):
    """Seconds since 1970 of an RFC 3339 UTC timestamp."""
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def endpoint(h, wh):
    r = h.api("GET", f"/api/webhooks/{wh['id']}")
    assert r.status_code == 200, r.text
    return r.json()


def publish_many(h, n, room=lambda i: f"race:{i % 10}", event="e", threads=4):
    """n API publishes from threads (one keep-alive session each)."""
    local = threading.local()

    def one(i):
        if not hasattr(local, "s"):
            local.s = h.api_session()
        r = local.s.post(h.admin_url("/api/publish"),
                         json={"room": room(i), "event": event, "data": {"i": i}}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["seq"]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def courier_stats(h):
    return h.api("GET", "/api/stats").json()["webhooks"].get("courier")


def courier_endpoint_states(stats, wh_id):
    """The circuit states the courier's figures give for one endpoint,
    wherever the figures keep them: [state, ...]."""
    found = []

    def state_of(v):
        if isinstance(v, str):
            return v
        if isinstance(v, dict):
            for k in ("state", "circuit", "breaker"):
                if k in v:
                    return state_of(v[k])
        return None

    def walk(v):
        if isinstance(v, dict):
            if wh_id in v:
                found.append(state_of(v[wh_id]))
            if wh_id in (v.get("id"), v.get("endpoint")):
                found.append(state_of(v))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(stats)
    return [s for s in found if s]


# ---- delivery ------------------------------------------------------------------------------

def test_delivery_has_the_body_and_the_headers(herald, receivers):
    r = receivers()
    wh = add(herald, r)                 # a generated secret
    data = {"n": 1, "s": "é\u2028\"", "big": 123456789012345678901234567890, "list": [1.5, None]}
    seq = publish(herald, "race:1", "order.created", data)
    (hit,) = r.wait_hits(1)
    (row,) = rows(herald, wh)
    assert hit.id == f"msg_{row['id']}"
    assert hit.body == row["body"].encode()          # the bytes fixed at commit
    body = hit.json()
    assert set(body) == {"type", "timestamp", "data", "room", "seq"}
    assert (body["type"], body["room"], body["seq"]) == ("order.created", "race:1", seq)
    assert body["data"] == data
    assert RFC3339_RE.match(body["timestamp"]), body["timestamp"]
    assert hit.headers["content-type"].startswith("application/json")
    assert abs(int(hit.timestamp) - hit.wall) <= 5
    assert len(hit.signatures) == 1 and hit.signatures[0].startswith("v1,")
    assert hit.verified_by == [wh["secret"]]
    d = wait_delivery(herald, wh, hit.id, "succeeded")
    assert d["attempts"] == 1 and d["last_status"] == 200 and d["next_attempt_at"] is None
    assert (d["event"], d["room"], d["seq"]) == ("order.created", "race:1", seq)
    # The receiver-side example verifies the real delivery, and nothing else.
    verify = load_contrib_verify()
    assert verify.verify(wh["secret"], hit.headers, hit.body) == body
    for secret, headers, payload in [
            (new_secret(), hit.headers, hit.body),
            (wh["secret"], hit.headers, hit.body.replace(b"race:1", b"race:2")),
            (wh["secret"], {**hit.headers, "webhook-id": "msg_0"}, hit.body),
            (wh["secret"], {**hit.headers, "webhook-timestamp": str(int(hit.timestamp) + 1)},
             hit.body)]:
        with pytest.raises(verify.VerificationError):
            verify.verify(secret, headers, payload)
    old = {**hit.headers, "webhook-timestamp": str(int(hit.timestamp) - 3600)}
    old["webhook-signature"] = "v1," + signature(wh["secret"], hit.id, old["webhook-timestamp"],
                                                 hit.body)
    with pytest.raises(verify.VerificationError, match="timestamp"):
        verify.verify(wh["secret"], old, hit.body)
    time.sleep(0.3)
    assert len(r.hits) == 1
    r.check()


def test_only_matching_events_are_delivered(herald, receivers):
    picky, every = receivers(), receivers()
    wp = add(herald, picky, events=["order.*", "invoice.paid"], rooms=["race:*"])
    we = add(herald, every, events=["*"])
    sent = [("race:1", "order.created"), ("race:2", "order.shipped"),
            ("market:1", "order.created"), ("race:1", "orderXcreated"),
            ("race:1", "invoice.paid"), ("race:1", "invoice.paid.late"), ("race:3", "odds")]
    for room, event in sent:
        publish(herald, room, event, {"room": room})
    r = herald.api("POST", "/api/publish", {"rooms": ["race:7", "market:7"],
                                            "event": "order.paid", "data": {}})
    assert r.status_code == 200, r.text
    sent += [("race:7", "order.paid"), ("market:7", "order.paid")]
    wanted = {("race:1", "order.created"), ("race:2", "order.shipped"),
              ("race:1", "invoice.paid"), ("race:7", "order.paid")}
    wait_all(herald, wp, "succeeded", len(wanted))
    wait_all(herald, we, "succeeded", len(sent))
    assert {(h.json()["room"], h.json()["type"]) for h in picky.snapshot()} == wanted
    assert len(picky.hits) == len(wanted)
    assert sorted((h.json()["room"], h.json()["type"]) for h in every.snapshot()) == sorted(sent)
    assert sorted(picky.ids()) == sorted(row_ids(herald, wp))
    assert sorted(every.ids()) == sorted(row_ids(herald, we))
    picky.check()
    every.check()


def test_two_failures_then_success_is_three_attempts_with_one_id(herald, receivers):
    r = receivers(respond=lambda hit, previous: 500 if previous < 2 else 200)
    wh = add(herald, r, secret=new_secret())
    publish(herald, "race:1", "x", {"k": "v"})
    (did,) = row_ids(herald, wh)
    d = wait_delivery(herald, wh, did, "succeeded", timeout=15)
    assert d["attempts"] == 3 and d["last_status"] == 200 and d["next_attempt_at"] is None
    time.sleep(1.5)                     # longer than a retry step: nothing more comes
    hits = r.snapshot()
    assert [h.status for h in hits] == [500, 500, 200]
    assert {h.id for h in hits} == {did}
    assert len({h.body for h in hits}) == 1
    stamps = [int(h.timestamp) for h in hits]
    assert stamps == sorted(stamps)
    # Each retry waits its schedule step (1 s) after the failure: never sooner.
    for before, after in zip(hits, hits[1:]):
        assert after.arrived - before.done >= 0.8, (before.done, after.arrived)
    assert deliveries(herald, wh, status="succeeded")[0]["id"] == did
    assert deliveries(herald, wh, status="failed") == []
    r.check()


def test_a_timeout_counts_as_a_failure(herald, receivers):
    # The first attempt gets no answer for 5 s; the endpoint allows 300 ms.
    r = receivers(respond=lambda hit, previous: (200, {}, 5) if previous == 0 else 200)
    wh = add(herald, r, timeout_ms=300)
    publish(herald, "race:1")
    (did,) = row_ids(herald, wh)
    d = poll(lambda: delivery(herald, wh, did), lambda d: d["status"] != "pending", timeout=10)
    assert d["status"] == "failed", d
    assert d["attempts"] == 1 and d["last_status"] is None and d["last_error"], d
    d = wait_delivery(herald, wh, did, "succeeded", timeout=10)
    assert d["attempts"] == 2 and d["last_status"] == 200
    first, second = r.snapshot()
    assert first.id == second.id == did
    # The retry came while the first request was still waiting for its answer.
    assert first.done is None or second.arrived < first.done
    r.check()


def test_410_disables_the_endpoint(herald, receivers):
    r = receivers(respond=lambda hit, previous: 410)
    wh = add(herald, r)
    publish(herald, "race:1")
    (did,) = row_ids(herald, wh)
    d = wait_delivery(herald, wh, did, "dead")
    assert d["attempts"] == 1 and d["last_status"] == 410 and d["next_attempt_at"] is None
    e = endpoint(herald, wh)
    assert e["enabled"] is False and e["disabled_reason"] == "gone"
    # Disabled: nothing is queued for it nor sent to it, and it cannot be retried.
    publish(herald, "race:1")
    assert row_ids(herald, wh) == [did]
    r2 = herald.api("POST", f"/api/webhooks/{wh['id']}/deliveries/{did}/retry")
    assert r2.status_code == 409, r2.text
    time.sleep(1.5)
    assert r.ids() == [did]
    r.check()


def test_retry_after_is_honoured_on_429_and_503(herald, receivers):
    wait_s = 3                         # longer than the schedule's 1 s step (+10 %)
    made = {}
    for code in (429, 503):
        made[code] = receivers(respond=lambda hit, previous, code=code:
                               (code, {"Retry-After": str(wait_s)}) if previous == 0 else 200)
    whs = {code: add(herald, r) for code, r in made.items()}
    publish(herald, "race:1")
    for code, r in made.items():
        (did,) = row_ids(herald, whs[code])
        d = wait_delivery(herald, whs[code], did, "succeeded", timeout=15)
        assert d["attempts"] == 2 and d["last_status"] == 200
        first, second = r.snapshot()
        assert first.status == code and first.id == second.id == did
        assert second.arrived - first.done >= wait_s - 0.5, (code, second.arrived - first.done)
        r.check()


def test_dead_after_max_attempts_then_a_manual_retry_succeeds_on_the_same_row(herald, receivers):
    healthy = threading.Event()
    r = receivers(respond=lambda hit, previous: 200 if healthy.is_set() else 500)
    wh = add(herald, r, max_attempts=3)
    publish(herald, "race:1", "order.created", {"n": 7})
    (did,) = row_ids(herald, wh)
    d = wait_delivery(herald, wh, did, "dead", timeout=15)
    assert d["attempts"] == 3 and d["last_status"] == 500 and d["next_attempt_at"] is None
    assert [x["id"] for x in deliveries(herald, wh, status="dead")] == [did]
    assert herald.api("GET", "/api/stats").json()["webhooks"]["dead"] == 1
    time.sleep(1.5)                     # a retry step: a dead delivery is not retried
    assert r.ids() == [did] * 3
    healthy.set()
    p = subprocess.run([HERALDCTL, "-c", herald.conf, "webhooks", "retry", wh["id"], did],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["id"] == did and again["status"] in ("pending", "succeeded")
    d = wait_delivery(herald, wh, did, "succeeded")
    assert d["attempts"] == 4 and d["last_status"] == 200
    hits = r.snapshot()
    assert [h.id for h in hits] == [did] * 4 and hits[-1].status == 200
    assert len({h.body for h in hits}) == 1
    assert row_ids(herald, wh) == [did]
    assert herald.api("GET", "/api/stats").json()["webhooks"]["dead"] == 0
    r.check()


def test_a_slow_endpoint_does_not_delay_another(herald, receivers):
    slow = receivers(respond=lambda hit, previous: (200, {}, 5))
    fast = receivers()
    ws = add(herald, slow, timeout_ms=20000)
    wf = add(herald, fast)
    n = 20
    publish_many(herald, n)
    fast.wait_ids(row_ids(herald, wf), timeout=15)
    slow_hits = slow.snapshot()
    # Every delivery to the fast endpoint came before the slow one had
    # answered a single request, and the slow one never had more than the
    # per-endpoint bound (webhook_concurrency = 4) in flight.
    assert all(h.done is None for h in slow_hits), slow_hits
    assert len(slow_hits) <= 4, slow_hits
    assert wait_until(lambda: slow.hits, timeout=5)
    assert all(h.done is None for h in slow.snapshot()) and len(slow.hits) <= 4
    wait_all(herald, wf, "succeeded", n)
    fast.check()
    slow.check()
    assert len(row_ids(herald, ws)) == n


def test_the_test_event_ignores_the_filter(herald, receivers):
    r = receivers()
    wh = add(herald, r, events=["never.*"], rooms=["nowhere:*"])
    publish(herald, "race:1", "order.created")
    resp = herald.api("POST", f"/api/webhooks/{wh['id']}/test")
    assert resp.status_code == 202, resp.text
    d = resp.json()
    (hit,) = r.wait_hits(1)
    assert hit.id == d["id"]
    body = hit.json()
    assert body["type"] == "webhook.test" and body["room"] is None and body["seq"] is None
    assert body["data"]["endpoint"] == wh["id"]
    assert wait_delivery(herald, wh, d["id"], "succeeded")["attempts"] == 1
    time.sleep(0.3)
    assert len(r.hits) == 1
    r.check()


def test_delete_drops_pending_deliveries(herald, receivers):
    # Every first attempt is answered 503 Retry-After: 3, so the rows wait.
    r = receivers(respond=lambda hit, previous: (503, {"Retry-After": "3"}))
    other = receivers()
    wh = add(herald, r, rooms=["race:*"])
    wo = add(herald, other, rooms=["market:*"])
    n = 5
    for i in range(n):
        publish(herald, f"race:{i}")
    ids = row_ids(herald, wh)
    assert len(ids) == n
    r.wait_ids(ids)
    wait_all(herald, wh, "failed", n)
    due = max(x["next_attempt_at"] for x in deliveries(herald, wh))
    assert herald.api("DELETE", f"/api/webhooks/{wh['id']}").status_code == 200
    seen = len(r.hits)
    assert seen == n
    assert rows(herald, wh) == []
    publish(herald, "race:1")
    publish(herald, "market:1")
    other.wait_hits(1)
    # Past the time the deleted rows were due, and a little more.
    time.sleep(min(max(unix(due) - time.time(), 0) + 1.5, 6))
    assert len(r.hits) == seen, r.snapshot()[seen:]
    assert herald.sqlite("SELECT count(*) AS n FROM webhook_deliveries "
                         f"WHERE endpoint_id = '{wh['id']}'")[0]["n"] == 0
    wait_all(herald, wo, "succeeded", 1)
    r.check()
    other.check()


def test_rotation_sends_both_signatures_during_the_overlap(herald, receivers):
    s1 = new_secret()
    r = receivers(secrets=[s1])
    wh = add(herald, r, secret=s1)
    publish(herald, "race:1", "before")
    (before,) = r.wait_hits(1)
    assert before.verified_by == [s1]
    resp = herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"rotate_secret": True})
    assert resp.status_code == 200, resp.text
    s2 = resp.json()["secret"]
    assert s2.startswith("whsec_") and s2 != s1
    r.secrets.append(s2)
    publish(herald, "race:1", "during")
    hit = r.wait_hits(2)[1]
    assert hit.json()["type"] == "during"
    assert len(hit.signatures) == 2 and sorted(hit.verified_by) == sorted([s1, s2])
    # A receiver knowing either secret accepts it.
    verify = load_contrib_verify()
    for s in (s1, s2):
        assert verify.verify(s, hit.headers, hit.body)["type"] == "during"
    with pytest.raises(verify.VerificationError):
        verify.verify(new_secret(), hit.headers, hit.body)
    # Rotating again to a given secret: the newest two sign, the first no longer.
    s3 = new_secret()
    resp = herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"secret": s3})
    assert resp.status_code == 200, resp.text
    r.secrets.append(s3)
    publish(herald, "race:1", "again")
    hit = r.wait_hits(3)[2]
    assert hit.json()["type"] == "again"
    assert len(hit.signatures) == 2 and sorted(hit.verified_by) == sorted([s2, s3])
    r.check()


def test_circuit_breaker_opens_and_a_healthy_endpoint_is_unaffected(herald_factory, receivers):
    cooldown = 2.5
    h = herald_factory(extra=FAST + "webhook_breaker_failures = 3\n"
                       f"webhook_breaker_cooldown_ms = {int(cooldown * 1000)}\n").start()
    wait_courier(h)
    healthy = threading.Event()
    bad = receivers(respond=lambda hit, previous: 200 if healthy.is_set() else 500)
    good = receivers()
    wb = add(h, bad, rooms=["race:*"], max_attempts=100)
    wg = add(h, good, rooms=["market:*"])
    for i in range(6):
        publish(h, f"race:{i}")
    e = poll(lambda: endpoint(h, wb), lambda e: e["circuit"]["state"] == "open", timeout=10)
    assert e["circuit"]["state"] == "open" and e["circuit"]["failures"] >= 3, e
    opened = time.monotonic()
    paused_until = e["circuit"]["paused_until"]
    # The courier's figures show the state too (checked at the end).
    stats = poll(lambda: courier_stats(h), lambda s: "open" in courier_endpoint_states(s, wb["id"]),
                 timeout=3, step=0.1)
    # The healthy endpoint gets its deliveries while the other is paused.
    for i in range(5):
        publish(h, f"market:{i}")
    good.wait_ids(row_ids(h, wg), timeout=10)
    assert endpoint(h, wg)["circuit"]["state"] == "closed"
    # Paused: after the attempts already under way, nothing until the
    # cool-down has passed; then a single probe.
    settled = opened + 0.5
    probe = wait_until(lambda: [x for x in bad.snapshot() if x.arrived > settled],
                       timeout=cooldown + 10)
    assert probe, "no probe after the cool-down"
    probe = probe[0]
    assert probe.wall >= unix(paused_until) - 0.5, (probe.wall, paused_until)
    # It failed: paused again, so no second request before another cool-down.
    time.sleep(max(probe.arrived + cooldown - 0.7 - time.monotonic(), 0))
    after = [x for x in bad.snapshot() if x.arrived > settled]
    assert after == [probe], (
        "more than one probe per cool-down: (webhook-id, s after the probe arrived, status, "
        "s after the probe when answered) " + repr([
            (x.id, round(x.arrived - probe.arrived, 4), x.status,
             x.done and round(x.done - probe.arrived, 4)) for x in after]))
    e = endpoint(h, wb)
    assert e["circuit"]["state"] in ("open", "half_open"), e
    # Healthy again: the next probe succeeds, the breaker closes, the rest follow.
    healthy.set()
    wait_all(h, wb, "succeeded", 6, timeout=cooldown + 15)
    e = endpoint(h, wb)
    assert e["circuit"]["state"] == "closed" and e["circuit"]["failures"] == 0, e
    assert e["enabled"] is True
    wait_all(h, wg, "succeeded", 5)
    bad.check()
    good.check()
    assert "open" in courier_endpoint_states(stats, wb["id"]), stats
    # The courier reports its figures every second.
    assert wait_until(lambda: "closed" in courier_endpoint_states(courier_stats(h), wb["id"]),
                      timeout=5)


# ---- crashes and volume ----------------------------------------------------------------------

def test_kill_9_of_every_process_with_200_queued_loses_none(herald, receivers):
    r = receivers(respond=lambda hit, previous: (200, {}, 0.05))
    wh = add(herald, r)
    publish_many(herald, 200, threads=2)
    r.wait_hits(10, timeout=10)
    herald.kill_all()
    before = len(r.hits)
    owed = set(row_ids(herald, wh))
    assert len(owed) == 200
    assert len(set(r.ids())) < 200, "everything was delivered before the kill"
    herald.start()
    wait_courier(herald)
    r.wait_ids(owed, timeout=30)
    wait_all(herald, wh, "succeeded", 200, timeout=20)
    hits = r.snapshot()
    assert set(h.id for h in hits) <= owed, set(h.id for h in hits) - owed
    # A repeat is the same delivery: the same bytes under the same webhook-id.
    bodies = collections.defaultdict(set)
    for hit in hits:
        bodies[hit.id].add(hit.body)
    assert all(len(b) == 1 for b in bodies.values())
    assert len(hits) >= before
    r.check()


@pytest.mark.parametrize("role", ["hub", "courier"])
def test_kill_9_of_the_hub_or_the_courier_mid_queue_loses_none(herald, receivers, role):
    r = receivers(respond=lambda hit, previous: (200, {}, 0.05))
    wh = add(herald, r)
    publish_many(herald, 100, threads=2)
    owed = set(row_ids(herald, wh))
    assert len(owed) == 100
    r.wait_hits(10, timeout=10)
    pid = herald.hub_pid() if role == "hub" else courier_pids(herald)[0]
    os.kill(pid, signal.SIGKILL)
    assert len(set(r.ids())) < 100, "everything was delivered before the kill"
    r.wait_ids(owed, timeout=30)
    wait_all(herald, wh, "succeeded", 100, timeout=20)
    assert set(r.ids()) <= owed
    assert (herald.hub_pid() if role == "hub" else courier_pids(herald)[0]) != pid
    r.check()


def test_1000_events_to_3_endpoints_lose_none_and_repeat_none(herald, receivers):
    rs = [receivers() for _ in range(3)]
    whs = [add(herald, r) for r in rs]
    n = 1000
    publish_many(herald, n)
    for r, wh in zip(rs, whs):
        ids = row_ids(herald, wh)
        assert len(ids) == n
        r.wait_ids(ids, timeout=45)
    for r, wh in zip(rs, whs):
        wait_all(herald, wh, "succeeded", n, timeout=20)
    for r, wh in zip(rs, whs):
        ids = r.ids()
        repeated = [i for i, c in collections.Counter(ids).items() if c > 1]
        assert not repeated, f"{len(repeated)} ids delivered twice as successes: {repeated[:5]}"
        assert sorted(ids) == sorted(row_ids(herald, wh))
        got = sorted((h.json()["room"], h.json()["seq"]) for h in r.snapshot())
        assert len(set(got)) == n
        # Connections are kept alive and reused, not opened per request.
        assert len({h.peer for h in r.snapshot()}) <= 50
        r.check()
    stats = herald.api("GET", "/api/stats").json()["webhooks"]
    assert stats["created"] == 3 * n and stats["queued"] == 0 and stats["dead"] == 0
    assert stats["succeeded"] == 3 * n


def test_courier_is_titled_and_restarted_after_kill_9(herald, receivers):
    (pid,) = courier_pids(herald)
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True,
                        timeout=10).stdout.strip()
    assert ps.startswith("heraldd: courier"), ps
    hub = herald.hub_pid()
    os.kill(pid, signal.SIGKILL)
    fresh = wait_until(lambda: [p for p in courier_pids(herald) if p != pid], timeout=15)
    assert len(fresh) == 1, [proc_title(p) for p in herald.child_pids()]
    assert herald.hub_pid() == hub
    # It works: deliveries queued while it was down and after are delivered.
    r = receivers()
    wh = add(herald, r)
    publish(herald, "race:1")
    r.wait_ids(row_ids(herald, wh), timeout=15)
    r.check()


# ---- the receiver-side examples ------------------------------------------------------------

@pytest.mark.parametrize("lang", ["python", "node"])
def test_contrib_receiver_verifies_real_deliveries(herald, lang, tmp_path):
    if lang == "node" and not NODE:
        pytest.skip("node is not installed")
    port = free_ports(1)[0]
    secret = new_secret()
    cmd = ([sys.executable, os.path.join(CONTRIB, "verify.py")] if lang == "python"
           else [NODE, os.path.join(CONTRIB, "verify.js")]) + ["--port", str(port), "--secret", secret]
    out = open(tmp_path / f"{lang}.out", "wb")
    err = open(tmp_path / f"{lang}.err", "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def events():
        try:
            r = requests.get(base + "/events", timeout=2)
            return r.json()["events"] if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None
    try:
        assert wait_until(lambda: events() is not None, timeout=15), \
            f"{lang} receiver did not start: {(tmp_path / f'{lang}.err').read_text()}"
        wh = add(herald, url=base + "/hooks", secret=secret)
        publish(herald, "race:1", "order.created", {"n": 1})
        publish(herald, "market:2", "order.paid", {"n": 2})
        assert herald.api("POST", f"/api/webhooks/{wh['id']}/test").status_code == 202
        # After a rotation the old secret's signature is still there: accepted.
        assert herald.api("PATCH", f"/api/webhooks/{wh['id']}",
                          {"rotate_secret": True}).status_code == 200
        publish(herald, "race:1", "after.rotation", {"n": 3})
        ids = row_ids(herald, wh)
        got = poll(events, lambda ev: ev is not None and {e["webhook_id"] for e in ev} >= set(ids),
                   timeout=15)
        assert got is not None and {e["webhook_id"] for e in got} >= set(ids), got
        by_id = {e["webhook_id"]: e["payload"] for e in got}
        for row in rows(herald, wh):
            assert by_id[f"msg_{row['id']}"] == json.loads(row["body"])
        assert sorted(p["type"] for p in by_id.values()) == \
            sorted(["order.created", "order.paid", "webhook.test", "after.rotation"])
        wait_all(herald, wh, "succeeded", 4)
        # A forged request is refused and not recorded.
        body = b'{"type":"forged","timestamp":"2026-01-01T00:00:00Z","data":{},"room":null,"seq":null}'
        ts = str(int(time.time()))
        forged = requests.post(base + "/hooks", data=body, timeout=5, headers={
            "content-type": "application/json", "webhook-id": "msg_999999",
            "webhook-timestamp": ts,
            "webhook-signature": "v1," + signature(new_secret(), "msg_999999", ts, body)})
        assert forged.status_code == 400
        assert len(events()) == len(got)
        # It printed one JSON line per verified delivery.
        out.flush()
        lines = [json.loads(x) for x in (tmp_path / f"{lang}.out").read_text().splitlines() if x]
        assert {x["webhook_id"] for x in lines} == {e["webhook_id"] for e in got}
    finally:
        proc.kill()
        proc.wait(10)
        out.close()
        err.close()
