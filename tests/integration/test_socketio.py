"""Socket.IO v4 compatibility (docs/socketio.md): the real socket.io-client in
Node against the real daemon -- transports, auth, verbs with acks, event
payloads, binary, aliases, fan-out over two workers, and connection state
recovery across dropped connections, killed workers and killed daemons."""
import json
import os
import queue
import subprocess
import threading
import time

import pytest

from conftest import HERALDD, make_token, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "sio_driver.js")
NODE = "/usr/bin/node"
CLIENT = os.path.join(HERE, "..", "node", "node_modules", "socket.io-client")

pytestmark = pytest.mark.skipif(not (os.path.exists(NODE) and os.path.isdir(CLIENT)),
                                reason="node and socket.io-client are needed (contrib/setup.sh)")

SIO_NAMESPACES = """
[namespace race]
subscribe = public
publish = api

[namespace market]
subscribe = public
publish = authenticated

[namespace small]
subscribe = public
history_size = 3
"""


class Driver:
    """One Node process holding socket.io-client sockets."""

    def __init__(self, herald):
        self.herald = herald
        self.proc = subprocess.Popen([NODE, DRIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.seen = []
        self.q = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.seen.append(msg)

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def url(self):
        return f"http://127.0.0.1:{self.herald.port}"

    def connect(self, name, timeout=10, expect="connect", nsp="", share=None, **opts):
        """Connects socket name to namespace nsp: over a new Engine.IO
        connection, or over socket share's."""
        self.send(cmd="connect", name=name, url=self.url(), nsp=(nsp or "/") if share else nsp,
                  share=share, opts=opts)
        return self.wait(lambda m: m["ev"] in ("connect", "connect_error") and m["name"] == name,
                         timeout, expect)

    def wait(self, pred, timeout=10, expect=None):
        deadline = time.time() + timeout
        start = 0
        while time.time() < deadline:
            with self.lock:
                for i in range(start, len(self.seen)):
                    m = self.seen[i]
                    if m["ev"] == "driver_error":
                        raise AssertionError(m["message"])
                    if pred(m):
                        del self.seen[i]
                        if expect and m["ev"] != expect:
                            raise AssertionError(f"expected {expect}, got {m}")
                        return m
                start = len(self.seen)
            time.sleep(0.01)
        raise AssertionError(f"timed out; seen: {self.seen[-20:]}")

    def emit_ack(self, name, event, *args, timeout=10):
        tag = f"t{time.time_ns()}"
        self.send(cmd="emit", name=name, event=event, args=list(args), ack=True, tag=tag)
        m = self.wait(lambda m: m["ev"] == "ack" and m.get("tag") == tag, timeout)
        assert m["err"] is None, m
        return m["args"]

    def events(self, name, event=None):
        """Takes every event seen so far for name (optionally one event name)."""
        with self.lock:
            got = [m for m in self.seen if m["ev"] == "event" and m["name"] == name and
                   (event is None or m["event"] == event)]
            self.seen = [m for m in self.seen if m not in got]
        return got

    def wait_events(self, name, event, n, timeout=10):
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline and len(got) < n:
            got += self.events(name, event)
            time.sleep(0.02)
        got += self.events(name, event)
        return got

    def state(self, name):
        self.send(cmd="state", name=name)
        return self.wait(lambda m: m["ev"] == "state" and m["name"] == name)

    def close(self):
        try:
            self.send(cmd="close_all")
            self.proc.wait(5)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def driver_factory():
    made = []

    def make(herald):
        d = Driver(herald)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


def start(herald_factory, extra="", workers=2):
    return herald_factory(workers=workers, namespaces=SIO_NAMESPACES,
                          extra="socketio_ping_interval = 1000\nsocketio_ping_timeout = 2000\n"
                                + extra).start()


def check_event(ev, room, seq, data, event_name):
    args = ev["args"]
    payload = args[0]
    assert ev["event"] == event_name
    assert payload["type"] == event_name
    assert payload["room"] == room
    assert payload["seq"] == seq
    assert payload["data"] == data
    assert payload["timestamp"].endswith("Z")
    assert isinstance(args[-1], str) and args[-1].isdigit()   # the offset


# ---- transports, auth, verbs ---------------------------------------------------------

def test_websocket_subscribe_and_events(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    c = d.connect("a", transports=["websocket"], auth={"token": make_token("alice")})
    assert c["transport"] == "websocket"
    ack = d.emit_ack("a", "subscribe", {"room": "race", "id": "7"})
    assert ack[0]["success"] is True and ack[0]["room"] == "race:7"
    assert ack[0]["seq"] == 0
    rooms = d.emit_ack("a", "getRooms")[0]
    assert sorted(rooms) == ["global", "race:7", "user:alice"]
    assert d.emit_ack("a", "subscriptions")[0] == rooms
    for i in range(3):
        assert h.publish("race:7", "odds", {"i": i, "price": 1.5}).status_code == 200
    evs = d.wait_events("a", "odds", 3)
    assert len(evs) == 3
    for i, ev in enumerate(evs):
        check_event(ev, "race:7", i + 1, {"i": i, "price": 1.5}, "odds")
    offsets = [int(ev["args"][-1]) for ev in evs]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    # the user's own room and global are joined by themselves
    h.api("POST", "/api/notifications", {"user": "alice", "type": "hello", "title": "hi"})
    n = d.wait_events("a", "notification", 1)
    assert n and n[0]["args"][0]["room"] == "user:alice"
    assert h.api("POST", "/api/broadcast", {"event": "news", "data": [1]}).status_code == 200
    g = d.wait_events("a", "news", 1)
    assert g and g[0]["args"][0]["data"] == [1]
    # errors come back in the ack
    bad = d.emit_ack("a", "subscribe", {"room": "nope:1"})[0]
    assert bad["success"] is False and bad["error"] == "forbidden"
    un = d.emit_ack("a", "unsubscribe", {"room": "race:7"})[0]
    assert un["success"] is True
    assert "race:7" not in d.emit_ack("a", "getRooms")[0]
    pong = d.emit_ack("a", "ping")[0]
    assert pong["type"] == "pong"


def test_polling_then_upgrade_across_workers(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    names = [f"p{i}" for i in range(8)]
    for n in names:
        d.connect(n, auth={"token": make_token(n)})
    for n in names:
        up = d.wait(lambda m, n=n: m["ev"] == "upgrade" and m["name"] == n, 10)
        assert up["transport"] == "websocket"
        assert d.emit_ack(n, "subscribe", {"room": "race:up"})[0]["success"]
    h.publish("race:up", "tick", {"x": 1})
    for n in names:
        evs = d.wait_events(n, "tick", 1)
        assert len(evs) == 1
        check_event(evs[0], "race:up", 1, {"x": 1}, "tick")


def test_polling_only_across_workers(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    names = [f"q{i}" for i in range(6)]
    for n in names:
        c = d.connect(n, transports=["polling"])
        assert c["transport"] == "polling"
        assert d.emit_ack(n, "subscribe", "race:poll")[0]["success"]
    for i in range(5):
        h.publish("race:poll", "tick", {"i": i})
    for n in names:
        evs = d.wait_events(n, "tick", 5)
        assert [e["args"][0]["seq"] for e in evs] == [1, 2, 3, 4, 5]
    # the sessions live in both workers, and requests reach their owner
    stats = h.api("GET", "/api/stats").json()
    assert stats["connections"] >= 6


def test_auth_refused(herald_factory, driver_factory):
    h = start(herald_factory, extra="allow_anonymous = no\n")
    h.write_config("socketio_ping_interval = 1000\nsocketio_ping_timeout = 2000\n"
                   "allow_anonymous = no\n", SIO_NAMESPACES)
    d = driver_factory(h)
    e = d.connect("anon", expect="connect_error", transports=["websocket"], reconnection=False)
    assert e["data"]["code"] == "auth_required"
    e = d.connect("bad", expect="connect_error", reconnection=False,
                  auth={"token": make_token("x", secret="wrong")})
    assert e["data"]["code"] == "auth_failed"
    e = d.connect("old", expect="connect_error", reconnection=False,
                  auth={"token": make_token("x", ttl=-3600)})
    assert e["data"]["code"] == "token_expired"
    ok = d.connect("good", auth={"token": make_token("bob")})
    assert ok["ev"] == "connect"


def test_publish_read_and_payloads(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    d.connect("a", transports=["websocket"], auth={"token": make_token("carol")})
    d.connect("b", transports=["websocket"])
    assert d.emit_ack("b", "subscribe", {"room": "market:m1"})[0]["success"]
    r = d.emit_ack("a", "publish", {"room": "market:m1", "event": "trade",
                                    "data": {"qty": 3, "side": "buy"}})[0]
    assert r["success"] is True and r["seq"] == 1 and r["room"] == "market:m1"
    evs = d.wait_events("b", "trade", 1)
    check_event(evs[0], "market:m1", 1, {"qty": 3, "side": "buy"}, "trade")
    # anonymous may not publish there
    r = d.emit_ack("b", "publish", {"room": "market:m1", "event": "trade", "data": 1})[0]
    assert r["success"] is False and r["error"] == "forbidden"
    h.api("POST", "/api/notifications", {"user": "carol", "type": "t", "title": "x"})
    d.wait_events("a", "notification", 1)
    r = d.emit_ack("a", "read", {"all": True})[0]
    assert r == {"success": True, "count": 1}


def test_aliases(herald_factory, driver_factory):
    h = start(herald_factory, extra="socketio_alias = subscribe_race subscribe race:{raceId}, "
                                    "subscribe:orders subscribe user:{userId}, "
                                    "unsubscribe_race unsubscribe race:{raceId}\n")
    d = driver_factory(h)
    d.connect("a", transports=["websocket"], auth={"token": make_token("dave")})
    r = d.emit_ack("a", "subscribe_race", {"raceId": 42})[0]
    assert r["success"] is True and r["room"] == "race:42"
    r = d.emit_ack("a", "subscribe:orders", {"userId": "dave"})[0]
    assert r["success"] is True and r["room"] == "user:dave"
    r = d.emit_ack("a", "subscribe:orders", {"userId": "eve"})[0]
    assert r["success"] is False and r["error"] == "forbidden"
    h.publish("race:42", "odds", {"p": 2})
    check_event(d.wait_events("a", "odds", 1)[0], "race:42", 1, {"p": 2}, "odds")
    assert d.emit_ack("a", "unsubscribe_race", 42)[0]["success"]
    assert "race:42" not in d.emit_ack("a", "getRooms")[0]


def test_binary_in_conformance_mode(herald_factory, driver_factory):
    h = herald_factory(workers=2, extra="socketio_test = on\nsocketio_recovery = off\n").start()
    d = driver_factory(h)
    d.connect("a", auth={"token": "123"})
    auth = d.wait_events("a", "auth", 1)
    assert auth[0]["args"] == [{"token": "123"}]
    d.send(cmd="emit", name="a", event="message",
           args=[{"$bin": "AQID"}, "text", {"nested": {"$bin": "BAUG"}}])
    back = d.wait_events("a", "message-back", 1)
    assert back[0]["args"] == [{"$bin": "AQID"}, "text", {"nested": {"$bin": "BAUG"}}]
    r = d.emit_ack("a", "message-with-ack", {"$bin": "/w=="}, 7)
    assert r == [{"$bin": "/w=="}, 7]


def test_fanout_1000_clients_two_workers(herald_factory, driver_factory):
    h = start(herald_factory, extra="max_connections_per_ip = 5000\nmax_handshakes_per_ip = 5000\n")
    d = driver_factory(h)
    count, messages = 1000, 20
    d.send(cmd="many", prefix="f", count=count, url=d.url(), room="race:fan", event="odds",
           opts={"transports": ["websocket"]})
    d.wait(lambda m: m["ev"] == "many_ready", 60)
    workers = [w for w in h.api("GET", "/api/stats").json()["workers"]]
    assert len(workers) == 2
    s = h.api_session()
    for i in range(messages):
        assert s.post(h.admin_url("/api/publish"),
                      json={"room": "race:fan", "event": "odds", "data": {"i": i}}).status_code == 200

    def counted():
        d.send(cmd="count", prefix="f")
        m = d.wait(lambda m: m["ev"] == "count", 10)
        return m if m["total"] == count * messages else None
    m = wait_until(counted, 30, 0.5)
    assert m, "not every client got every message"
    assert m["min"] == messages and not m["gap"]


# ---- namespaces other than "/" ---------------------------------------------------------

NSP_CONFIG = "socketio_namespaces = /orders=order, /admin=admin\n"
NSP_NAMESPACES = SIO_NAMESPACES + """
[namespace order]
subscribe = authenticated
publish = authenticated
"""


def start_nsp(herald_factory, extra=""):
    return herald_factory(workers=2, namespaces=NSP_NAMESPACES,
                          extra="socketio_ping_interval = 1000\nsocketio_ping_timeout = 2000\n"
                                + NSP_CONFIG + extra).start()


def registry_rooms(h, user, want=None):
    """The rooms of the user's one connection in /api/connections, once want
    (a room) is among them."""
    def get():
        cs = h.api("GET", f"/api/connections?user={user}").json()["connections"]
        return cs if len(cs) == 1 and (want is None or want in cs[0]["rooms"]) else None
    cs = wait_until(get, 5)
    assert cs, h.api("GET", f"/api/connections?user={user}").json()
    return sorted(cs[0]["rooms"])


def test_namespace_rooms_over_one_connection(herald_factory, driver_factory):
    h = start_nsp(herald_factory)
    d = driver_factory(h)
    tok = make_token("olga")
    root = d.connect("root", transports=["websocket"], auth={"token": tok})
    orders = d.connect("orders", share="root", nsp="/orders", auth={"token": tok})
    assert orders["engine"] == root["engine"] and orders["id"] != root["id"]
    ack = d.emit_ack("orders", "subscribe", {"room": "42"})[0]
    assert ack["success"] is True and ack["room"] == "order:42"
    assert d.emit_ack("orders", "subscribe", "order:43")[0]["room"] == "order:43"
    bad = d.emit_ack("orders", "subscribe", {"room": "race:1"})[0]
    assert bad["success"] is False and bad["error"] == "forbidden" and bad["message"]
    # each socket lists its own rooms; the automatic ones are "/"'s
    assert sorted(d.emit_ack("orders", "getRooms")[0]) == ["order:42", "order:43"]
    assert sorted(d.emit_ack("root", "subscriptions")[0]) == ["global", "user:olga"]
    assert h.publish("order:42", "shipped", {"n": 1}).status_code == 200
    check_event(d.wait_events("orders", "shipped", 1)[0], "order:42", 1, {"n": 1}, "shipped")
    time.sleep(0.3)
    assert d.events("root") == []
    # the same room on "/" too: each socket gets it once, on its own namespace
    assert d.emit_ack("root", "subscribe", "order:42")[0]["success"]
    h.publish("order:42", "shipped", {"n": 2})
    for name in ("root", "orders"):
        evs = d.wait_events(name, "shipped", 1)
        assert len(evs) == 1
        check_event(evs[0], "order:42", 2, {"n": 2}, "shipped")
    time.sleep(0.3)
    assert d.events("root") == [] and d.events("orders") == []
    # publish maps its room as subscribe does
    r = d.emit_ack("orders", "publish", {"room": "43", "event": "note", "data": "hi"})[0]
    assert r["success"] is True and r["room"] == "order:43"
    check_event(d.wait_events("orders", "note", 1)[0], "order:43", 1, "hi", "note")
    r = d.emit_ack("orders", "publish", {"room": "race:1", "event": "x", "data": 1})[0]
    assert r["success"] is False and r["error"] == "forbidden"
    assert d.emit_ack("orders", "ping")[0]["type"] == "pong"
    # one registry connection, with the rooms of both sockets; a room two
    # sockets hold stays listed until both have left it
    assert registry_rooms(h, "olga") == ["global", "order:42", "order:43", "user:olga"]
    assert d.emit_ack("orders", "unsubscribe", "42")[0]["success"]
    assert d.emit_ack("orders", "subscribe", "44")[0]["success"]
    assert "order:42" in registry_rooms(h, "olga", "order:44")
    assert d.emit_ack("root", "unsubscribe", "order:42")[0]["success"]
    assert d.emit_ack("root", "subscribe", "race:9")[0]["success"]
    assert "order:42" not in registry_rooms(h, "olga", "race:9")


def test_namespace_auth_and_disconnect(herald_factory, driver_factory):
    h = start_nsp(herald_factory, extra="allow_anonymous = no\n")
    d = driver_factory(h)
    tok = make_token("pia")
    d.connect("root", transports=["websocket"], auth={"token": tok})
    e = d.connect("orders", share="root", nsp="/orders", expect="connect_error",
                  auth={"token": make_token("pia", secret="wrong")})
    assert e["data"]["code"] == "auth_failed"
    assert d.emit_ack("root", "ping")[0]["type"] == "pong"
    d.send(cmd="resume", name="orders", auth={"token": tok})
    d.wait(lambda m: m["name"] == "orders" and m["ev"] in ("connect", "connect_error"),
           expect="connect")
    assert d.emit_ack("orders", "subscribe", "7")[0]["room"] == "order:7"
    assert d.emit_ack("orders", "subscribe", "8")[0]["room"] == "order:8"
    # a DISCONNECT of /orders leaves its rooms; "/" goes on
    d.send(cmd="disconnect", name="orders")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "orders")
    assert wait_until(lambda: registry_rooms(h, "pia") == ["global", "user:pia"], 5)
    assert d.emit_ack("root", "subscribe", "order:7")[0]["success"]
    h.publish("order:7", "e", 1)
    assert len(d.wait_events("root", "e", 1)) == 1
    # and the other way round: /orders again, then "/" leaves
    d.send(cmd="resume", name="orders")
    d.wait(lambda m: m["ev"] == "connect" and m["name"] == "orders")
    assert d.emit_ack("orders", "subscribe", "7")[0]["success"]
    d.send(cmd="disconnect", name="root")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "root")
    h.publish("order:7", "e", 2)
    evs = d.wait_events("orders", "e", 1)
    assert [ev["args"][0]["data"] for ev in evs] == [2]
    assert registry_rooms(h, "pia") == ["order:7"]
    # a kick ends every socket of the connection
    cid = h.api("GET", "/api/connections?user=pia").json()["connections"][0]["id"]
    assert h.api("DELETE", f"/api/connections/{cid}").status_code in (200, 204)
    m = d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "orders")
    assert m["reason"] == "io server disconnect"


def test_unknown_namespace(herald_factory, driver_factory):
    h = start_nsp(herald_factory)
    d = driver_factory(h)
    e = d.connect("x", nsp="/nope", expect="connect_error", transports=["websocket"],
                  reconnection=False)
    assert e["message"] == "Invalid namespace"
    d.connect("root", transports=["websocket"])
    e = d.connect("y", share="root", nsp="/order", expect="connect_error")
    assert e["message"] == "Invalid namespace"
    assert d.emit_ack("root", "ping")[0]["type"] == "pong"


def test_namespace_beside_recovery(herald_factory, driver_factory):
    """"/" recovers what it missed; the other namespaces of the connection
    come back unrecovered, without their rooms, as Socket.IO's do."""
    h = start_nsp(herald_factory)
    d = driver_factory(h)
    tok = make_token("rita")
    st = recovery_setup(h, d)
    d.connect("orders", share="r", nsp="/orders", auth={"token": tok})
    assert d.emit_ack("orders", "subscribe", "5")[0]["success"]
    d.send(cmd="pause", name="r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "orders")
    publish_both(h, 0, 2)
    h.publish("order:5", "e", 1)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r")
    assert c["recovered"] is True and c["id"] == st["id"]
    assert_exactly(d.wait_events("r", "odds", 4), expected(1, 2))
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "orders")
    assert not c.get("recovered")
    assert d.emit_ack("orders", "getRooms")[0] == []
    assert d.events("orders", "e") == []


@pytest.mark.parametrize("value, error", [
    ("/orders=order, /admin=admin", None),
    ("/orders=order, /orders=admin", "socketio_namespaces: /orders is listed twice"),
    ("/=order", "socketio_namespaces: / is herald's own namespace"),
    ("orders=order", "bad Socket.IO namespace 'orders'"),
    ("/or ders=order", "bad Socket.IO namespace '/or ders'"),
    ("/orders=nope", "socketio_namespaces: /orders=nope: no namespace 'nope'"),
    ("/orders=*", "no namespace '*'"),
    ("/orders", "socketio_namespaces: '/orders' is not /NAME=NAMESPACE"),
])
def test_namespaces_config(tmp_path, value, error):
    conf = tmp_path / "h.conf"
    conf.write_text(f"socketio_namespaces = {value}\n\n[namespace order]\nsubscribe = public\n")
    r = subprocess.run([HERALDD, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    if error is None:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0 and error in r.stderr, r.stderr


def test_namespaces_config_conformance_custom(tmp_path):
    conf = tmp_path / "h.conf"
    conf.write_text("socketio_test = on\nsocketio_namespaces = /custom=global\n")
    r = subprocess.run([HERALDD, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "/custom is the conformance mode's" in r.stderr


# ---- connection state recovery ---------------------------------------------------------

def recovery_setup(h, d, name="r", transports=("websocket",)):
    d.connect(name, transports=list(transports), auth={"token": make_token("rita")})
    assert d.emit_ack(name, "subscribe", {"room": "race:r1"})[0]["success"]
    assert d.emit_ack(name, "subscribe", {"room": "race:r2"})[0]["success"]
    return d.state(name)


def publish_both(h, start_i, n):
    for i in range(start_i, start_i + n):
        assert h.publish("race:r1", "odds", {"i": i}).status_code == 200
        assert h.publish("race:r2", "odds", {"i": i}).status_code == 200


def assert_exactly(evs, want_rooms_seqs):
    got = [(e["args"][0]["room"], e["args"][0]["seq"]) for e in evs]
    assert got == want_rooms_seqs, got
    offs = [int(e["args"][-1]) for e in evs]
    assert offs == sorted(offs) and len(set(offs)) == len(offs)


def expected(start_seq, n):
    out = []
    for s in range(start_seq, start_seq + n):
        out += [("race:r1", s), ("race:r2", s)]
    return out


def test_recovery_after_dropped_connection(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    st = recovery_setup(h, d)
    publish_both(h, 0, 2)
    assert_exactly(d.wait_events("r", "odds", 4), expected(1, 2))
    d.send(cmd="pause", name="r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    publish_both(h, 2, 3)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r")
    assert c["recovered"] is True and c["id"] == st["id"]
    assert_exactly(d.wait_events("r", "odds", 6), expected(3, 3))
    # live again, in both rooms, with nothing doubled
    publish_both(h, 5, 1)
    assert_exactly(d.wait_events("r", "odds", 2), expected(6, 1))
    time.sleep(0.3)
    assert d.events("r", "odds") == []


def test_recovery_without_offset(herald_factory, driver_factory):
    """A socket that received nothing before it dropped sends pid without
    offset: it gets everything published since it subscribed."""
    h = start(herald_factory)
    d = driver_factory(h)
    recovery_setup(h, d)
    d.send(cmd="pause", name="r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    publish_both(h, 0, 2)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r")
    assert c["recovered"] is True
    assert_exactly(d.wait_events("r", "odds", 4), expected(1, 2))


def test_recovery_after_worker_killed(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    st = recovery_setup(h, d)
    publish_both(h, 0, 1)
    assert_exactly(d.wait_events("r", "odds", 2), expected(1, 1))
    # kill -9 every worker (the socket's one among them), publish meanwhile;
    # the client comes back only once those are stored
    d.send(cmd="noreconnect", name="r")
    for pid in h.workers_pids():
        os.kill(pid, 9)
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    h.wait_ready()
    publish_both(h, 1, 3)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r", 20)
    assert c["recovered"] is True and c["id"] == st["id"]
    assert_exactly(d.wait_events("r", "odds", 6), expected(2, 3))
    publish_both(h, 4, 1)
    assert_exactly(d.wait_events("r", "odds", 2), expected(5, 1))


def test_recovery_after_everything_killed(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    st = recovery_setup(h, d)
    publish_both(h, 0, 2)
    assert_exactly(d.wait_events("r", "odds", 4), expected(1, 2))
    d.send(cmd="noreconnect", name="r")
    h.kill_all()            # kill -9 of every herald process, the socket connected
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    h.start()
    publish_both(h, 2, 3)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r", 20)
    assert c["recovered"] is True and c["id"] == st["id"]
    assert_exactly(d.wait_events("r", "odds", 6), expected(3, 3))


def test_recovery_outside_window(herald_factory, driver_factory):
    h = start(herald_factory, extra="socketio_recovery_window = 1\n")
    d = driver_factory(h)
    st = recovery_setup(h, d)
    d.send(cmd="pause", name="r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    publish_both(h, 0, 1)
    time.sleep(2.2)
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r")
    assert c["recovered"] is False and c["id"] != st["id"]
    assert d.wait_events("r", "odds", 1, timeout=0.5) == []


def test_recovery_after_pruning_is_refused(herald_factory, driver_factory):
    h = start(herald_factory)
    d = driver_factory(h)
    d.connect("s", transports=["websocket"])
    assert d.emit_ack("s", "subscribe", {"room": "small:1"})[0]["success"]
    h.publish("small:1", "e", {"i": 0})
    assert len(d.wait_events("s", "e", 1)) == 1
    d.send(cmd="pause", name="s")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "s")
    for i in range(1, 12):          # history_size 3: most of them are pruned
        h.publish("small:1", "e", {"i": i})
    ok = wait_until(lambda: h.sqlite("SELECT min(seq) AS m FROM messages m JOIN rooms r "
                                     "ON r.id = m.room_id WHERE r.name = 'small:1'")[0]["m"] > 3, 15)
    assert ok
    d.send(cmd="resume", name="s")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "s")
    assert c["recovered"] is False


def test_drop_during_recovery_then_recover_again(herald_factory, driver_factory):
    """A connection lost while it replays what it missed, recovered again:
    every message exactly once, in order, offsets never going back."""
    h = start(herald_factory)
    d = driver_factory(h)
    recovery_setup(h, d)
    d.send(cmd="pause", name="r")
    d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
    s = h.api_session()
    n = 300
    pad = "x" * 2000
    for i in range(n):
        for room in ("race:r1", "race:r2"):
            assert s.post(h.admin_url("/api/publish"),
                          json={"room": room, "event": "odds", "data": {"i": i, "pad": pad}}
                          ).status_code == 200
    d.send(cmd="resume", name="r")
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r")
    assert c["recovered"] is True
    got = d.wait_events("r", "odds", 10)
    d.send(cmd="drop", name="r")            # in the middle of the replay
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r", 20)
    assert c["recovered"] is True
    got += d.wait_events("r", "odds", 2 * n - len(got), timeout=30)
    assert_exactly(got, expected(1, n))


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs /usr/bin/chromium")
def test_browser_bundle_in_chromium(herald_factory):
    h = start(herald_factory)
    out = subprocess.run([NODE, os.path.join(HERE, "sio_browser.js"),
                          f"http://127.0.0.1:{h.port}", h.admin_url(""), "test-api-key",
                          make_token("browser")], capture_output=True, text=True, timeout=90)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in r, r["error"]
    assert r["ack"]["success"] is True and r["ack"]["room"] == "race:b1"
    assert r["firstTransport"] == "polling" and r["upgraded"] == "websocket"
    assert sorted(r["rooms"]) == ["global", "race:b1", "user:browser"]
    assert [e["payload"]["data"]["i"] for e in r["seen"]] == list(range(6))
    assert [e["payload"]["seq"] for e in r["seen"]] == list(range(1, 7))
    assert all(e["payload"]["type"] == "odds" and e["payload"]["room"] == "race:b1"
               for e in r["seen"])
    assert r["recovered"] is True and r["sameId"] is True
