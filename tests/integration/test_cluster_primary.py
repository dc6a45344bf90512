"""The primary of a cluster (SPEC §15, docs/scaling.md): every committed
message handed to Redis once (PUBLISH on herald:room:{room}, XADD to the
capped stream herald:log:{room} with ID {seq}-0), kept and resent in order
across a Redis outage without slowing publishes; the `heads` request; the
cluster view (herald:node:*, herald:users:*, herald:primary) in /api/stats
and `heraldctl stats`. Without cluster_redis nothing of it shows."""
import json
import re
import signal
import subprocess
import time

from conftest import HERALDCTL, Resp, make_token, poll, wait_until
from ipcframes import FakeWorker, deliver_fields


# ---- helpers ------------------------------------------------------------------------

NAMESPACES = """
[namespace race]
subscribe = public
publish = api
history_size = 1000

[namespace capped]
subscribe = public
publish = api
history_size = 300

[namespace nohist]
subscribe = public
publish = api
history_size = 0

[namespace big]
subscribe = public
publish = api
"""


def primary(herald_factory, redis, extra=""):
    return herald_factory(namespaces=NAMESPACES,
                          extra=f"cluster_redis = {redis.url}\n{extra}").start()


def publish_ok(h, room, i):
    r = h.publish(room, data={"i": i})
    assert r.status_code == 200, r.text
    return r.json()


def stream(redis, room):
    """[(id, frame)] of herald:log:{room}."""
    return [(eid.decode(), dict(zip(fields[::2], fields[1::2]))[b"f"])
            for eid, fields in redis.call("XRANGE", f"herald:log:{room}", "-", "+")]


def commandstats(redis, cmd):
    m = re.search(rf"cmdstat_{cmd}:calls=(\d+)", redis.call("INFO", "commandstats").decode())
    return int(m.group(1)) if m else 0


def cluster(h):
    return h.api("GET", "/api/stats").json().get("cluster")


def node_of(h, name):
    c = cluster(h)
    return next((n for n in c["nodes"] if n["name"] == name), None) if c else None


def ask(peer, op):
    """(status, JSON) of the hub's answer to op, sent by peer (a FakeWorker):
    for ops that no API route carries."""
    status, body = peer.request(op)
    return status, json.loads(body)


# ---- messages in Redis ------------------------------------------------------------------

def test_publish_reaches_channel_and_stream(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    sub = Resp(redis_server.port)
    assert sub.call("SUBSCRIBE", "herald:room:race:one") == [b"subscribe", b"herald:room:race:one", 1]
    # No client subscribes: once the workers have said so after the first
    # message, the hub routes to none of them, and Redis gets it all the same.
    sent, frames = [], []
    for i in range(2):
        sent.append(publish_ok(h, "race:one", i))
        kind, channel, frame = sub.read()
        assert (kind, channel) == (b"message", b"herald:room:race:one")
        frames.append(frame)
        time.sleep(0.5)
    sub.close()
    for got, frame, i in zip(sent, frames, range(2)):
        f = deliver_fields(frame)
        assert (f["room"], f["seq"], f["epoch"], f["event"], f["data"]) == \
            ("race:one", got["seq"], got["epoch"], "test", {"i": i})
        assert f["gpos"] > 0
    assert [got["seq"] for got in sent] == [1, 2]
    # the same bytes in the stream, under {seq}-0
    entries = poll(lambda: stream(redis_server, "race:one"), lambda v: len(v) == 2)
    assert entries == [("1-0", frames[0]), ("2-0", frames[1])]


def test_each_message_once_in_commit_order(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    s = h.api_session()
    seqs = []
    for i in range(200):
        r = s.post(h.admin_url("/api/publish"), json={"room": "race:many", "event": "e",
                                                       "data": {"i": i}})
        assert r.status_code == 200, r.text
        seqs.append(r.json()["seq"])
    assert seqs == list(range(1, 201))
    entries = poll(lambda: stream(redis_server, "race:many"), lambda v: len(v) >= 200)
    assert [e for e, _ in entries] == [f"{n}-0" for n in range(1, 201)]
    assert [deliver_fields(f)["data"]["i"] for _, f in entries] == list(range(200))
    assert commandstats(redis_server, "publish") == 200
    assert commandstats(redis_server, "xadd") == 200
    # a publish to several rooms, and a message a job emits (a notification)
    r = h.api("POST", "/api/publish", {"rooms": ["race:a", "race:b"], "event": "e", "data": 1})
    assert r.status_code == 200, r.text
    r = h.api("POST", "/api/notifications", {"user": "nina", "type": "ping"})
    assert r.status_code == 200, r.text
    for room in ("race:a", "race:b", "user:nina"):
        entries = poll(lambda: stream(redis_server, room), lambda v: v)
        assert [(e, deliver_fields(f)["room"]) for e, f in entries] == [("1-0", room)]
    assert commandstats(redis_server, "publish") == 203


def test_stream_capped_near_history_size(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    s = h.api_session()
    for room in ("capped:x", "nohist:x"):
        for i in range(600):
            assert s.post(h.admin_url("/api/publish"),
                          json={"room": room, "event": "e", "data": i}).status_code == 200
    last = poll(lambda: redis_server.call("XREVRANGE", "herald:log:capped:x", "+", "-", "COUNT", 1),
                lambda v: v and v[0][0] == b"600-0")
    assert last and last[0][0] == b"600-0"
    # MAXLEN ~ trims whole nodes of at most 100 entries
    assert 300 <= redis_server.call("XLEN", "herald:log:capped:x") < 400
    assert 100 <= redis_server.call("XLEN", "herald:log:nohist:x") < 200     # history_size 0: 100


def test_new_epoch_deletes_the_old_stream(herald_factory, redis_server):
    # a stream left by an earlier database: the room's first message replaces it
    for seq in (1, 2, 3):
        redis_server.call("XADD", "herald:log:race:reborn", f"{seq}-0", "f", b"old")
    h = primary(herald_factory, redis_server)
    got = publish_ok(h, "race:reborn", 1)
    entries = poll(lambda: stream(redis_server, "race:reborn"),
                   lambda v: v and v[0][1] != b"old")
    assert [e for e, _ in entries] == ["1-0"]
    assert deliver_fields(entries[0][1])["epoch"] == got["epoch"]
    publish_ok(h, "race:reborn", 2)
    entries = poll(lambda: stream(redis_server, "race:reborn"), lambda v: len(v) == 2)
    assert [e for e, _ in entries] == ["1-0", "2-0"]


def test_refused_xadd_is_not_retried(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    for room in ("race:dup", "race:wrong"):
        publish_ok(h, room, 0)
        poll(lambda: stream(redis_server, room), lambda v: len(v) == 1)
    # an ID Redis has already (as after a resend) is refused: nothing to say
    redis_server.call("XADD", "herald:log:race:dup", "3-0", "f", b"x")
    # any other refusal is logged, once
    redis_server.call("DEL", "herald:log:race:wrong")
    redis_server.call("SET", "herald:log:race:wrong", "not a stream")
    for i in range(1, 4):
        publish_ok(h, "race:dup", i)
        publish_ok(h, "race:wrong", i)
    publish_ok(h, "race:fine", 0)
    assert poll(lambda: [e for e, _ in stream(redis_server, "race:dup")],
                lambda v: v == ["1-0", "3-0", "4-0"]) == ["1-0", "3-0", "4-0"]
    assert poll(lambda: len(stream(redis_server, "race:fine")), lambda v: v == 1) == 1
    node = poll(lambda: node_of(h, f"127.0.0.1:{h.port}"), lambda n: n["lag"] == 0)
    assert node["lag"] == 0
    failed = [line for line in h.read_log().splitlines() if "event=redis_xadd_failed" in line]
    assert len(failed) == 1 and "WRONGTYPE" in failed[0], failed


def test_redis_outage_loses_nothing_and_fails_no_publish(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    name = f"127.0.0.1:{h.port}"
    carol = h.client(token=make_token("carol"))
    assert poll(lambda: redis_server.call("SMEMBERS", f"herald:users:{name}"),
                lambda v: v == [b"carol"]) == [b"carol"]
    before = [publish_ok(h, "race:out", i)["seq"] for i in range(5)]
    poll(lambda: stream(redis_server, "race:out"), lambda v: len(v) == 5)

    redis_server.kill()
    during = []
    for i in range(50):     # each answered (publish_ok) although Redis is gone
        during.append(publish_ok(h, "race:out", 100 + i)["seq"])
    assert during == list(range(before[-1] + 1, before[-1] + 51))
    node = poll(lambda: node_of(h, name), lambda n: n["link"] == "down" and n["lag"] == 50)
    assert (node["link"], node["lag"]) == ("down", 50)

    redis_server.start()            # empty: what it had went with it
    entries = poll(lambda: stream(redis_server, "race:out"), lambda v: len(v) >= 50, timeout=10)
    assert [e for e, _ in entries] == [f"{s}-0" for s in during]
    assert [deliver_fields(f)["data"]["i"] for _, f in entries] == list(range(100, 150))
    node = poll(lambda: node_of(h, name), lambda n: n["link"] == "up" and n["lag"] == 0)
    assert (node["link"], node["lag"]) == ("up", 0)
    # the node's users are whole again, and it is in the view and the primary's address back
    assert poll(lambda: redis_server.call("SMEMBERS", f"herald:users:{name}"),
                lambda v: v == [b"carol"]) == [b"carol"]
    assert redis_server.call("GET", "herald:primary") == f"http://127.0.0.1:{h.admin_port}".encode()
    later = publish_ok(h, "race:out", 999)
    entries = poll(lambda: stream(redis_server, "race:out"), lambda v: len(v) == 51)
    assert entries[-1][0] == f"{later['seq']}-0"
    assert h.api("GET", "/api/stats").json()["cluster_dropped"] == 0
    carol.close()


def test_hung_redis_blocks_no_publish(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    sub = h.client()
    sub.subscribe("race:hung")
    redis_server.signal(signal.SIGSTOP)    # connected, but reading nothing
    try:
        for i in range(30):     # answered and delivered: the hub never waits for Redis
            publish_ok(h, "race:hung", i)
        assert [e["data"]["i"] for e in sub.wait_events("race:hung", 30)] == list(range(30))
    finally:
        redis_server.signal(signal.SIGCONT)
    entries = poll(lambda: stream(redis_server, "race:hung"), lambda v: len(v) == 30)
    assert [e for e, _ in entries] == [f"{s}-0" for s in range(1, 31)]
    sub.close()


def test_full_queue_drops_the_oldest(herald_factory, redis_server):
    h = primary(herald_factory, redis_server, extra="max_body_size = 8388608")
    redis_server.kill()
    s = h.api_session()
    blob = "x" * (4 << 20)
    for i in range(20):          # 80 MiB of frames: more than the queue holds
        r = s.post(h.admin_url("/api/publish"), json={"room": "big:x", "event": "e",
                                                       "data": {"i": i, "blob": blob}})
        assert r.status_code == 200, r.text[:200]
    dropped = h.api("GET", "/api/stats").json()["cluster_dropped"]
    assert 0 < dropped < 20
    redis_server.start()
    ids = poll(lambda: [e for e, _ in stream(redis_server, "big:x")],
               lambda v: len(v) == 20 - dropped, timeout=10)
    assert ids == [f"{n}-0" for n in range(dropped + 1, 21)]


# ---- heads ------------------------------------------------------------------------------

def test_heads_standalone(herald_factory):
    h = herald_factory(namespaces=NAMESPACES).start()
    first = [publish_ok(h, "race:h1", i) for i in range(3)][-1]
    publish_ok(h, "race:h2", 0)
    peer = FakeWorker(h)
    try:
        status, body = ask(peer, {"op": "heads", "rooms": ["race:h1", "race:h2", "race:never"]})
        assert status == 200, body
        assert body == {"heads": {"race:h1": {"epoch": first["epoch"], "seq": 3},
                                  "race:h2": {"epoch": body["heads"]["race:h2"]["epoch"], "seq": 1},
                                  "race:never": {"epoch": "", "seq": 0}}}
        assert re.match(r"^[0-9a-f]{16}$", body["heads"]["race:h2"]["epoch"])
        assert ask(peer, {"op": "heads", "rooms": []}) == (200, {"heads": {}})
        for bad in ({"op": "heads"}, {"op": "heads", "rooms": "race:h1"},
                    {"op": "heads", "rooms": ["race:h1", 7]},
                    {"op": "heads", "rooms": [f"race:{i}" for i in range(10001)]}):
            status, body = ask(peer, bad)
            assert status == 400 and body["error"]["code"] == "bad_request", body
        status, body = ask(peer, {"op": "heads", "rooms": [f"race:{i}" for i in range(10000)]})
        assert status == 200 and len(body["heads"]) == 10000
    finally:
        peer.close()
    # asking made no room
    assert h.sqlite("SELECT name FROM rooms WHERE name IN ('race:never', 'race:9')") == []
    assert h.api("GET", "/api/rooms/race:never").status_code == 404
    # from the database once the hub no longer holds the room
    h.stop()
    h.start()
    peer = FakeWorker(h)
    try:
        assert ask(peer, {"op": "heads", "rooms": ["race:h1"]}) == \
            (200, {"heads": {"race:h1": {"epoch": first["epoch"], "seq": 3}}})
    finally:
        peer.close()


# ---- the cluster view ---------------------------------------------------------------------

def test_cluster_view(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    name = f"127.0.0.1:{h.port}"
    api = f"http://127.0.0.1:{h.admin_port}"
    alice1 = h.client(token=make_token("alice"))
    alice2 = h.client(token=make_token("alice"))
    bob = h.client(token=make_token("bob"))
    c = poll(lambda: cluster(h), lambda c: c and c["totalConnections"] == 3 and c["uniqueUsers"] == 2)
    assert (c["totalConnections"], c["uniqueUsers"]) == (3, 2)
    [me] = c["nodes"]
    assert {k: me[k] for k in ("name", "role", "api", "connections", "users", "link", "lag")} == \
        {"name": name, "role": "primary", "api": api, "connections": 3, "users": 2,
         "link": "up", "lag": 0}
    assert me["rooms"] >= 2 and me["deliveries_per_sec"] >= 0
    assert abs(me["updated_ms"] - time.time() * 1000) < 5000
    # in Redis, for the edges
    assert redis_server.call("GET", "herald:primary") == api.encode()
    assert 0 < redis_server.call("TTL", "herald:primary") <= 10
    assert name.encode() in redis_server.call("SMEMBERS", "herald:nodes")
    fig = poll(lambda: redis_server.call("HGETALL", f"herald:node:{name}"),
               lambda v: dict(zip(v[::2], v[1::2])).get(b"connections") == b"3")
    fig = dict(zip(fig[::2], fig[1::2]))
    assert (fig[b"role"], fig[b"api"], fig[b"users"], fig[b"link"]) == (b"primary", api.encode(), b"2", b"up")
    assert 0 < redis_server.call("TTL", f"herald:node:{name}") <= 10
    assert sorted(redis_server.call("SMEMBERS", f"herald:users:{name}")) == [b"alice", b"bob"]

    # another node (a fake edge) counts in the totals
    redis_server.call("HSET", "herald:node:fake", "role", "edge", "api", "http://fake:1",
                      "connections", 5, "rooms", 1, "users", 2, "deliveries_per_sec", 7,
                      "link", "up", "lag", 0, "updated_ms", int(time.time() * 1000))
    redis_server.call("SADD", "herald:nodes", "fake")
    redis_server.call("SADD", "herald:users:fake", "bob", "carol")
    c = poll(lambda: cluster(h), lambda c: len(c["nodes"]) == 2 and c["uniqueUsers"] == 3)
    fake = next(n for n in c["nodes"] if n["name"] == "fake")
    assert fake == {"name": "fake", "role": "edge", "api": "http://fake:1", "connections": 5,
                    "rooms": 1, "users": 2, "deliveries_per_sec": 7, "link": "up", "lag": 0,
                    "updated_ms": fake["updated_ms"]}
    assert (c["totalConnections"], c["uniqueUsers"]) == (8, 3)
    assert redis_server.call("KEYS", "herald:users-union:*") == []     # counted, not kept
    out = subprocess.run([HERALDCTL, "-c", h.conf, "stats"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()
            if line.split() and line.split()[0] in (name, "fake")}
    assert rows[name][1:3] == ["primary", "3"] and rows["fake"][1:3] == ["edge", "5"]
    assert "total connections 8, unique users 3" in out.stdout

    # its figures expire: it leaves the view and herald:nodes
    redis_server.call("DEL", "herald:node:fake")
    c = poll(lambda: cluster(h), lambda c: len(c["nodes"]) == 1)
    assert (len(c["nodes"]), c["totalConnections"], c["uniqueUsers"]) == (1, 3, 2)
    assert wait_until(lambda: b"fake" not in redis_server.call("SMEMBERS", "herald:nodes"))

    # a user's last connection gone leaves the node's users
    alice1.close()
    c = poll(lambda: cluster(h), lambda c: c["totalConnections"] == 2)
    assert (c["totalConnections"], c["uniqueUsers"]) == (2, 2)
    alice2.close()
    assert poll(lambda: redis_server.call("SMEMBERS", f"herald:users:{name}"),
                lambda v: v == [b"bob"]) == [b"bob"]
    c = poll(lambda: cluster(h), lambda c: c["uniqueUsers"] == 1)
    assert (c["totalConnections"], c["uniqueUsers"]) == (1, 1)
    bob.close()


def test_deliveries_per_sec(herald_factory, redis_server):
    h = primary(herald_factory, redis_server)
    name = f"127.0.0.1:{h.port}"
    subs = [h.client() for _ in range(4)]
    for c in subs:
        c.subscribe("race:rate")
    s = h.api_session()
    deadline = time.time() + 2.5
    while time.time() < deadline:
        assert s.post(h.admin_url("/api/publish"),
                      json={"room": "race:rate", "event": "e", "data": 0}).status_code == 200
        time.sleep(0.01)
    rate = poll(lambda: node_of(h, name)["deliveries_per_sec"], lambda v: v >= 40)
    assert rate >= 40
    for c in subs:
        c.close()


def test_standalone_has_no_cluster(herald):
    st = herald.api("GET", "/api/stats").json()
    assert "cluster" not in st and "cluster_dropped" not in st
    out = subprocess.run([HERALDCTL, "-c", herald.conf, "stats"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and "NODE" not in out.stdout
    assert json.loads(out.stdout)["connections"] == 0
