"""The server API on the admin listener (SPEC §9): API key, publishing and
its fan-out over every worker, ordering, the registry of rooms and
connections, kicking, statistics, metrics, and the limits that protect the
server from its clients (rate limit, slow consumers, throttled namespaces)."""
import json
import os
import re
import subprocess
import threading
import time

import pytest
import requests

from conftest import (API_KEY, EPOCH_RE, HERALDCTL, TS_RE, connect_on_all_workers, make_token,
                      poll, pump_all, wait_until)
from wsraw import RawWS


def room_rows(h, room):
    return h.sqlite("SELECT m.seq, m.event, m.data FROM messages m JOIN rooms r ON r.id = m.room_id "
                    f"WHERE r.name = '{room}' ORDER BY m.seq")


def stats(h):
    r = h.api("GET", "/api/stats")
    assert r.status_code == 200, r.text
    return r.json()


# ---- API key ---------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Bearer {API_KEY}x"},
                                     {"Authorization": f"Bearer {API_KEY[:-1]}"},
                                     {"Authorization": f"Basic {API_KEY}"},
                                     {"Authorization": API_KEY},
                                     {"Authorization": "Bearer "}])
def test_api_key_required(shared_herald, headers):
    herald = shared_herald
    stored = herald.sqlite("SELECT count(*) AS n FROM messages")[0]["n"]
    for method, path, body in (("GET", "/api/stats", None), ("GET", "/api/rooms", None),
                               ("POST", "/api/publish", {"room": "race:1", "event": "e", "data": {}}),
                               ("GET", "/api/connections", None)):
        r = requests.request(method, herald.admin_url(path), json=body, headers=headers, timeout=10)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        err = r.json()["error"]
        assert isinstance(err["code"], str) and err["code"] and isinstance(err["message"], str)
    # the refused publish stored nothing
    assert herald.sqlite("SELECT count(*) AS n FROM messages")[0]["n"] == stored
    assert herald.api("GET", "/api/stats").status_code == 200


def test_api_not_on_the_client_listener(herald):
    r = requests.get(f"http://127.0.0.1:{herald.port}/api/stats",
                     headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert r.status_code == 404


# ---- publishing -------------------------------------------------------------------------

def test_publish_one_room(herald):
    c = herald.client()
    c.subscribe("race:1")
    data = {"odds": [1.5, 2.25], "name": "Zoë \u2603", "ok": True, "none": None, "n": -3}
    r = herald.publish("race:1", "odds", data)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body == {"room": "race:1", "seq": 1, "epoch": body["epoch"]}
    assert EPOCH_RE.match(body["epoch"])
    ev = c.wait_events("race:1", 1)[0]
    assert ev == {"type": "event", "room": "race:1", "seq": 1, "epoch": body["epoch"],
                  "event": "odds", "data": data, "ts": ev["ts"]}
    assert TS_RE.match(ev["ts"])
    r2 = herald.publish("race:1", "odds", [1, "two", 3.0])
    assert r2.json()["seq"] == 2 and r2.json()["epoch"] == body["epoch"]
    assert c.wait_events("race:1", 2)[1]["data"] == [1, "two", 3.0]
    rows = room_rows(herald, "race:1")
    assert [(x["seq"], x["event"], json.loads(x["data"])) for x in rows] == \
        [(1, "odds", data), (2, "odds", [1, "two", 3.0])]
    c.close()


@pytest.mark.parametrize("data", ["a string", 42, 0.5, None, [], {}, True, {"deep": [[[{"x": 1}]]]}])
def test_publish_any_json_data(shared_herald, data):
    herald = shared_herald
    c = herald.client()
    c.subscribe("race:any")
    r = herald.api("POST", "/api/publish", {"room": "race:any", "event": "e", "data": data})
    assert r.status_code == 200, r.text
    ev = c.wait_events("race:any", 1)[0]
    assert ev["data"] == data and type(ev["data"]) is type(data)
    c.close()


@pytest.mark.parametrize("data", ['{"price":1.10,"e":1E3,"s":"caf\\u00e9"}',
                                  '{"id":123456789012345678901234567890}'])
def test_publish_data_is_verbatim(herald, data):
    """SPEC §3: `data` is the publisher's JSON verbatim (and docs/storage.md:
    stored byte for byte as sent to clients)."""
    c = herald.client()
    c.subscribe("race:verbatim")
    body = '{"room":"race:verbatim","event":"e","data":' + data + '}'
    r = requests.post(herald.admin_url("/api/publish"), data=body, timeout=10,
                      headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    c.wait_events("race:verbatim", 1)
    assert (',"data":' + data + ',').encode() in c.raw[-1]
    assert room_rows(herald, "race:verbatim")[0]["data"] == data
    c.close()


def test_publish_without_data_delivers_null(herald):
    c = herald.client()
    c.subscribe("race:nodata")
    r = herald.api("POST", "/api/publish", {"room": "race:nodata", "event": "e"})
    assert r.status_code == 200, r.text
    assert c.wait_events("race:nodata", 1)[0]["data"] is None
    c.close()


def test_publish_many_rooms(herald):
    c = herald.client()
    c.subscribe("race:2")
    herald.publish("race:1", "e", {})                 # race:1 is one ahead
    r = herald.api("POST", "/api/publish", {"rooms": ["race:1", "race:2", "race:3"],
                                            "event": "start", "data": {"at": "12:00"}})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["room"] for x in res] == ["race:1", "race:2", "race:3"]
    assert [x["seq"] for x in res] == [2, 1, 1]
    assert all(EPOCH_RE.match(x["epoch"]) for x in res)
    assert len({x["epoch"] for x in res}) == 3
    ev = c.wait_events("race:2", 1)[0]
    assert ev["data"] == {"at": "12:00"} and ev["event"] == "start" and ev["seq"] == 1
    assert ev["epoch"] == res[1]["epoch"]
    for room, seq in (("race:1", 2), ("race:2", 1), ("race:3", 1)):
        assert [x["seq"] for x in room_rows(herald, room)][-1] == seq
    c.close()


def test_broadcast_reaches_global(herald):
    anon = herald.client()
    alice = herald.client(token=make_token("alice"))
    for c in (anon, alice):
        c.expect("subscribed", room="global")
    r = herald.api("POST", "/api/broadcast", {"event": "maintenance", "data": {"in": 5}})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["room"] == "global" and b["seq"] == 1 and EPOCH_RE.match(b["epoch"])
    for c in (anon, alice):
        ev = c.wait_events("global", 1)[0]
        assert ev["event"] == "maintenance" and ev["data"] == {"in": 5} and ev["seq"] == 1
        assert ev["epoch"] == b["epoch"]
    # broadcast ignores a room given in the body
    r = herald.api("POST", "/api/broadcast", {"event": "x", "data": 1, "room": "race:1"})
    assert r.status_code == 200 and r.json()["room"] == "global" and r.json()["seq"] == 2
    anon.close()
    alice.close()


@pytest.mark.parametrize("body", [
    {"event": "e", "data": {}},                                   # no room
    {"room": "race:1", "data": {}},                               # no event
    {"room": "race:1", "event": "", "data": {}},
    {"room": "race:1", "event": "e" * 129, "data": {}},
    {"room": "race:1", "event": 5, "data": {}},
    {"room": "race 1", "event": "e", "data": {}},
    {"room": "", "event": "e", "data": {}},
    {"room": "r" * 201, "event": "e", "data": {}},
    {"room": 7, "event": "e", "data": {}},
    {"rooms": [], "event": "e", "data": {}},
    {"rooms": ["race:1", "bad room"], "event": "e", "data": {}},
    {"rooms": ["race:1", 3], "event": "e", "data": {}},
    {"rooms": [f"race:{i}" for i in range(1001)], "event": "e", "data": {}},
    {"room": "race:1", "event": "e", "data": {}, "idempotency_key": 5},
    {"room": "race:1", "event": "e", "data": {}, "idempotency_key": "k" * 201},
])
def test_publish_validation(shared_herald, body):
    herald = shared_herald
    stored = herald.sqlite("SELECT count(*) AS n FROM messages")[0]["n"]
    r = herald.api("POST", "/api/publish", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and isinstance(err["message"], str) and err["message"]
    assert herald.sqlite("SELECT count(*) AS n FROM messages")[0]["n"] == stored


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'"room"', b'{"room": "race:1",',
                                 b'{"room":"race:1","room":"race:2","event":"e"}'])
def test_publish_body_not_a_json_object(shared_herald, raw):
    herald = shared_herald
    r = requests.post(herald.admin_url("/api/publish"), data=raw, timeout=10,
                      headers={"Authorization": f"Bearer {API_KEY}",
                               "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"


def test_unknown_routes_are_404(herald):
    for method, path in (("GET", "/api/nope"), ("GET", "/api"), ("POST", "/api/nope"),
                         ("GET", "/api/users/alice"), ("GET", "/api/rooms/race:1/nope")):
        r = herald.api(method, path)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "not_found"


def test_publish_reaches_subscribers_on_every_worker(herald):
    clients, workers = connect_on_all_workers(herald)
    assert workers == {1, 2}, workers
    for c in clients:
        c.subscribe("race:fan")
    session = herald.api_session()
    sent = []
    for i in range(50):
        r = session.post(herald.admin_url("/api/publish"),
                         json={"room": "race:fan", "event": "tick", "data": {"i": i}}, timeout=10)
        assert r.status_code == 200, r.text
        sent.append(r.json()["seq"])
    assert sent == list(range(1, 51))
    deadline = time.time() + 10
    while time.time() < deadline and any(len(c.events("race:fan")) < 50 for c in clients):
        pump_all(clients, 0.1)
    for c in clients:
        ev = c.events("race:fan")
        assert [e["seq"] for e in ev] == sent
        assert [e["data"]["i"] for e in ev] == list(range(50))
    for c in clients:
        c.close()


def test_per_connection_order_with_concurrent_publishers(herald):
    clients, _ = connect_on_all_workers(herald, n_min=8)
    for c in clients:
        c.subscribe("race:conc")
    acked = {}
    lock = threading.Lock()
    errors = []

    def publisher(t):
        s = herald.api_session()
        for i in range(60):
            r = s.post(herald.admin_url("/api/publish"),
                       json={"room": "race:conc", "event": "p", "data": {"t": t, "i": i}}, timeout=10)
            if r.status_code != 200:
                errors.append(r.text)
                return
            with lock:
                acked[r.json()["seq"]] = (t, i)

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        pump_all(clients, 0.05)
    for th in threads:
        th.join()
    assert not errors
    assert sorted(acked) == list(range(1, 241))
    deadline = time.time() + 10
    while time.time() < deadline and any(len(c.events("race:conc")) < 240 for c in clients):
        pump_all(clients, 0.1)
    for c in clients:
        ev = c.events("race:conc")
        assert [e["seq"] for e in ev] == list(range(1, 241))
        assert all((e["data"]["t"], e["data"]["i"]) == acked[e["seq"]] for e in ev)
    # each publisher's own messages were sequenced in the order it sent them
    for t in range(4):
        mine = [acked[s][1] for s in sorted(acked) if acked[s][0] == t]
        assert mine == list(range(60))
    for c in clients:
        c.close()


# ---- rooms and connections ----------------------------------------------------------

def test_rooms_listing_and_detail(herald):
    a, b = herald.client(), herald.client()
    for c in (a, b):
        c.subscribe("race:a")
    epoch = {herald.publish("race:a", "e", {}).json()["epoch"] for _ in range(3)}.pop()
    herald.publish("race:b", "e", {})
    herald.publish("small:x", "e", {})

    def listing(q=""):
        r = herald.api("GET", "/api/rooms" + q)
        assert r.status_code == 200
        return {x["room"]: x for x in r.json()["rooms"]}
    rooms = poll(listing, lambda L: L.get("race:a", {}).get("subscribers") == 2)
    assert rooms["race:a"]["seq"] == 3 and rooms["race:a"]["subscribers"] == 2
    assert rooms["race:b"]["seq"] == 1 and rooms["race:b"]["subscribers"] == 0
    assert rooms["small:x"]["seq"] == 1
    assert set(listing("?prefix=race:")) == {"race:a", "race:b"}
    assert set(listing("?prefix=small")) == {"small:x"}
    assert listing("?prefix=zzz") == {}

    r = herald.api("GET", "/api/rooms/race:a")
    assert r.status_code == 200
    d = r.json()
    assert d["room"] == "race:a" and d["seq"] == 3 and d["first_seq"] == 1
    assert d["subscribers"] == 2 and EPOCH_RE.match(d["epoch"])
    assert d["epoch"] == epoch
    # %-encoded names work as well
    assert herald.api("GET", "/api/rooms/race%3Ab").json()["seq"] == 1
    r = herald.api("GET", "/api/rooms/race:none")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    b.close()
    assert wait_until(lambda: herald.api("GET", "/api/rooms/race:a").json()["subscribers"] == 1, 5)
    a.close()


def test_registry_after_auth_message(herald):
    c = herald.client()
    c.expect("subscribed", room="global")
    c.subscribe("race:reg")
    cid = c.welcome["client_id"]
    r = c.call("auth", token=make_token("alice"))
    assert r["type"] == "authenticated"
    c.expect("subscribed", room="user:alice")

    def mine():
        conns = herald.api("GET", "/api/connections?user=alice").json()["connections"]
        return conns[0] if conns and "user:alice" in conns[0]["rooms"] else None
    x = wait_until(mine, 5)
    assert x and str(x["id"]) == cid
    assert sorted(x["rooms"]) == ["global", "race:reg", "user:alice"]
    assert herald.api("GET", "/api/rooms/global").json()["subscribers"] == 1
    assert herald.api("GET", "/api/rooms/race:reg").json()["subscribers"] == 1
    s = herald.api("GET", "/api/stats").json()
    assert (s["connections"], s["anonymous"], s["user_connections"]) == (1, 0, {"alice": 1})
    c.close()


def test_connections_listing(herald):
    a1 = herald.client(token=make_token("alice"))
    a2 = herald.client(bearer=make_token("alice"))
    bob = herald.client(token=make_token("bob"))
    anon = herald.client()
    a1.subscribe("race:7")

    def conns(q=""):
        r = herald.api("GET", "/api/connections" + q)
        assert r.status_code == 200
        return {str(x["id"]): x for x in r.json()["connections"]}
    ids = {c.welcome["client_id"] for c in (a1, a2, bob, anon)}
    assert wait_until(lambda: set(conns()) == ids, 5), conns()
    alice = poll(lambda: conns("?user=alice"),
                 lambda d: "race:7" in d.get(a1.welcome["client_id"], {}).get("rooms", []))
    assert set(alice) == {a1.welcome["client_id"], a2.welcome["client_id"]}
    x = alice[a1.welcome["client_id"]]
    assert x["user"] == "alice" and x["worker"] in (1, 2) and x["remote_addr"].startswith("127.0.0.1")
    assert sorted(x["rooms"]) == ["global", "race:7", "user:alice"]
    assert TS_RE.match(x["connected_at"])
    assert conns()[anon.welcome["client_id"]]["user"] is None
    assert conns("?user=nobody") == {}
    for c in (a1, a2, bob, anon):
        c.close()
    assert wait_until(lambda: conns() == {}, 5)


def test_kick_one_connection_on_each_worker(herald):
    clients, workers = connect_on_all_workers(herald, n_min=6)
    assert workers == {1, 2}
    where = {str(x["id"]): x["worker"] for x in herald.api("GET", "/api/connections").json()["connections"]}
    victims = {}
    for c in clients:
        victims.setdefault(where[c.welcome["client_id"]], c)
    assert set(victims) == {1, 2}
    for c in victims.values():
        cid = c.welcome["client_id"]
        r = herald.api("DELETE", f"/api/connections/{cid}")
        assert r.status_code == 200, r.text
        assert r.json() == {"disconnected": 1}
        assert c.expect_close(5) == 4008
    others = [c for c in clients if c not in victims.values()]
    for c in others:
        assert c.call("ping")["type"] == "pong"
    gone = {c.welcome["client_id"] for c in victims.values()}
    assert wait_until(lambda: not gone & {str(x["id"]) for x in
                                          herald.api("GET", "/api/connections").json()["connections"]}, 5)
    for bad in sorted(gone) + ["123", "abc", "0"]:
        r = herald.api("DELETE", f"/api/connections/{bad}")
        assert r.status_code == 404, (bad, r.text)
        assert r.json()["error"]["code"] == "not_found"
    for c in others:
        c.close()


def test_nothing_follows_the_close_frame(herald):
    """RFC 6455 §5.5.1: after its close frame the server sends no data frame,
    though the room goes on receiving while it waits for the client's."""
    w = RawWS(herald.port)
    cid = w.recv_json()["client_id"]
    w.send_json({"type": "subscribe", "id": "s", "room": "race:after"})
    assert w.recv_json()["type"] == "subscribed"
    assert herald.api("DELETE", f"/api/connections/{cid}").status_code == 200
    assert w.expect_close() == 4008
    # the client does not answer the close; events keep coming to the room
    for i in range(5):
        assert herald.publish("race:after", "e", {"i": i}).status_code == 200
    rest = bytes(w.buf)
    w.sock.settimeout(5)
    while chunk := w.sock.recv(65536):
        rest += chunk
    assert rest == b""
    w.close()


def test_disconnect_a_user(herald):
    bobs, workers = connect_on_all_workers(herald, n_min=6, token=make_token("bob"))
    assert workers == {1, 2}
    alice = herald.client(token=make_token("alice"))
    anon = herald.client()
    r = herald.api("POST", "/api/users/bob/disconnect")
    assert r.status_code == 200, r.text
    assert r.json() == {"disconnected": len(bobs)}
    for c in bobs:
        assert c.expect_close(5) == 4008
    for c in (alice, anon):
        assert c.call("ping")["type"] == "pong"
    assert wait_until(lambda: herald.api("GET", "/api/connections?user=bob")
                      .json()["connections"] == [], 5)
    r = herald.api("POST", "/api/users/nobody/disconnect")
    assert r.status_code == 200 and r.json() == {"disconnected": 0}
    # bob may come back
    again = herald.client(token=make_token("bob"))
    assert again.welcome["user"] == "bob"
    again.drain(0.2)
    assert not again.closed
    for c in (again, alice, anon):
        c.close()


# ---- stats and metrics ---------------------------------------------------------------

def test_stats_match_reality(herald):
    clients = [herald.client(token=make_token("alice")), herald.client(token=make_token("alice")),
               herald.client(token=make_token("bob"))] + [herald.client() for _ in range(3)]

    def expect(conns, users, anon, per_user):
        def ok():
            s = stats(herald)
            return s if (s["connections"], s["unique_users"], s["anonymous"],
                         s["user_connections"]) == (conns, users, anon, per_user) else None
        s = wait_until(ok, 5)
        assert s, stats(herald)
        return s
    s = expect(6, 2, 3, {"alice": 2, "bob": 1})
    assert len(s["workers"]) == 2
    assert s["uptime"] >= 0
    for k in ("published", "delivered", "duplicates", "slow_consumers_closed", "rate_limited"):
        assert isinstance(s["messages"][k], int)
    published = s["messages"]["published"]
    for c in clients:
        c.subscribe("race:s")
    for i in range(5):
        herald.publish("race:s", "e", {"i": i})
    for c in clients:
        c.wait_events("race:s", 5)
    assert stats(herald)["messages"]["published"] == published + 5
    # worker figures are periodic: every client got 5 deliveries
    assert wait_until(lambda: stats(herald)["messages"]["delivered"] >= 30, 5)
    assert wait_until(lambda: stats(herald)["rooms"] >= 1, 5)
    clients[0].close()
    clients[3].close()
    expect(4, 2, 2, {"alice": 1, "bob": 1})
    clients[1].close()
    expect(3, 1, 2, {"bob": 1})
    for c in clients:
        c.close()
    expect(0, 0, 0, {})


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (-?[0-9.]+(e[+-]?[0-9]+)?)$')


def parse_metrics(text):
    values, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        values[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return values, types


def test_metrics(herald):
    clients = [herald.client(token=make_token("alice")), herald.client()]
    for i in range(4):
        assert herald.publish("race:m", "e", {"i": i}).status_code == 200

    def scrape():
        r = requests.get(herald.admin_url("/metrics"), timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return parse_metrics(r.text)
    values, types = poll(scrape, lambda v: v[0].get("herald_connections") == 2)
    assert values["herald_connections"] == 2
    assert values["herald_unique_users"] == 1
    assert values["herald_anonymous_connections"] == 1
    assert values["herald_messages_published_total"] == 4
    assert types["herald_connections"] == "gauge"
    assert types["herald_messages_published_total"] == "counter"
    assert all(types.get(re.sub(r"\{.*", "", k)) in ("gauge", "counter") for k in values)
    per_worker = {k: v for k, v in values.items() if k.startswith("herald_worker_connections{")}
    assert len(per_worker) == 2
    # the metrics endpoint exists only on the admin listener
    assert requests.get(f"http://127.0.0.1:{herald.port}/metrics", timeout=10).status_code == 404
    for c in clients:
        c.close()


# ---- protection ---------------------------------------------------------------------

def test_rate_limit_then_close_1008(herald_factory):
    h = herald_factory(extra="rate_per_sec = 5\nrate_burst = 5").start()
    c = h.client()
    base = stats(h)["messages"]["rate_limited"]
    c.send_many([{"type": "ping", "id": i} for i in range(40)])
    code = c.expect_close(10)
    assert code == 1008
    pongs = [m for m in c.messages if m.get("type") == "pong"]
    limited = [m for m in c.messages if m.get("type") == "error"]
    assert 5 <= len(pongs) <= 7, len(pongs)
    assert [p["id"] for p in pongs] == list(range(len(pongs)))
    assert limited and all(m["code"] == "rate_limited" for m in limited)
    # errors come after the allowance was spent, not before
    assert c.messages.index(limited[0]) > c.messages.index(pongs[4])
    assert wait_until(lambda: stats(h)["messages"]["rate_limited"] > base, 5)
    # a client within its rate is not affected
    d = h.client()
    for i in range(4):
        assert d.call("ping")["type"] == "pong"
    d.close()


def test_rate_limit_refills(herald_factory):
    h = herald_factory(extra="rate_per_sec = 5\nrate_burst = 5").start()
    c = h.client()
    c.send_many([{"type": "ping", "id": i} for i in range(7)])
    c.expect("pong", id=4)
    assert c.expect("error")["code"] == "rate_limited"
    c.drain(1.2)                            # about 6 tokens come back
    assert not c.closed
    for i in range(3):
        assert c.call("ping")["type"] == "pong"
    c.close()


def test_slow_consumer_is_closed_others_get_everything(herald_factory):
    h = herald_factory(extra="send_queue_max = 65536").start()
    normal = h.client()
    normal.subscribe("race:slow")
    slow = h.client(rcvbuf=4096)
    slow.subscribe("race:slow")
    base = stats(h)["messages"]["slow_consumers_closed"]
    blob = "x" * 50000
    session = h.api_session()
    published = 0
    closed = False
    deadline = time.time() + 40
    while time.time() < deadline and published < 800:
        r = session.post(h.admin_url("/api/publish"), timeout=10,
                         json={"room": "race:slow", "event": "big", "data": {"i": published, "b": blob}})
        assert r.status_code == 200, r.text
        published += 1
        assert r.json()["seq"] == published
        normal.wait_seq("race:slow", published, timeout=10)
        if published % 10 == 0 and stats(h)["messages"]["slow_consumers_closed"] > base:
            closed = True
            break
    assert closed, f"no slow consumer closed after {published} messages of 50 kB"
    # the slow one reads at last (within the close handshake's grace):
    # a prefix of the stream, then close 1008
    assert slow.expect_close(15) == 1008
    got = slow.seqs("race:slow")
    assert got == list(range(1, len(got) + 1))
    assert len(got) < published
    for _ in range(5):                      # life goes on for the others
        published += 1
        assert h.publish("race:slow", "big", {"i": published - 1, "b": "after"}).status_code == 200
    ev = normal.wait_events("race:slow", published)
    assert [e["seq"] for e in ev] == list(range(1, published + 1))
    assert [e["data"]["i"] for e in ev] == list(range(published))
    assert not normal.closed
    normal.close()


def test_throttled_namespace_coalesces(herald):
    c = herald.client()
    c.subscribe("odds:1")
    session = herald.api_session()
    url = herald.admin_url("/api/publish")
    first = session.post(url, json={"room": "odds:1", "event": "odds", "data": {"v": 0}}, timeout=10)
    assert first.status_code == 200 and first.json()["seq"] == 1
    results = {}

    def post(v):
        s = herald.api_session()
        results[v] = s.post(url, json={"room": "odds:1", "event": "odds", "data": {"v": v}}, timeout=10)

    threads = []
    for v in range(1, 10):                  # 9 more, 25 ms apart: inside one 300 ms window
        th = threading.Thread(target=post, args=(v,))
        th.start()
        threads.append(th)
        time.sleep(0.025)
    for th in threads:
        th.join(15)
    assert all(results[v].status_code == 200 for v in results), [r.text for r in results.values()]
    stored = {results[v].json()["seq"]: v for v in results if results[v].json()["seq"] is not None}
    superseded = [v for v in results if results[v].json()["seq"] is None]
    assert all(results[v].json().get("superseded") is True for v in superseded)
    assert sorted(stored) == list(range(2, 2 + len(stored)))
    assert 1 <= len(stored) <= 2, stored             # far fewer than 9
    assert len(superseded) == 9 - len(stored)
    last_seq = max(stored)
    c.wait_seq("odds:1", last_seq, timeout=5)
    c.drain(0.4)                                      # nothing else comes after the window
    events = c.events("odds:1")
    assert [e["seq"] for e in events] == list(range(1, last_seq + 1))
    assert events[-1]["data"] == {"v": 9}
    assert [e["data"]["v"] for e in events[1:]] == [stored[s] for s in sorted(stored)]
    assert len(room_rows(herald, "odds:1")) == last_seq
    # after the window, the next publish is stored again
    r = session.post(url, json={"room": "odds:1", "event": "odds", "data": {"v": 10}}, timeout=10)
    assert r.json()["seq"] == last_seq + 1
    assert c.wait_seq("odds:1", last_seq + 1)[-1] == last_seq + 1
    assert c.events("odds:1")[-1]["data"] == {"v": 10}
    c.close()


def test_heraldctl_token_is_accepted(herald):
    if not os.path.exists(HERALDCTL):
        pytest.skip("heraldctl not built")
    out = subprocess.run([HERALDCTL, "-c", herald.conf, "token", "alice"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    token = [line for line in out.stdout.split() if line.count(".") == 2][-1]
    c = herald.client(token=token)
    assert c.welcome["user"] == "alice"
    assert sorted(c.welcome["rooms"]) == ["global", "user:alice"]
    c.close()
