"""An edge's relay (SPEC §15) against a real redis-server and a stand-in for
the primary: a small HTTP server in this file that answers the primary's
cluster API (/api/cluster/request, /api/cluster/frames) from messages the test
gives it. The relay follows the rooms its workers subscribe to in Redis,
hands messages on in order (gaps filled from the room's stream, else from the
primary, duplicates dropped), forwards publishes and requests to the primary,
and comes back after Redis restarts. Some tests talk to the relay as a worker
would, over its Unix socket, to see the very bytes it sends."""
import http.server
import json
import os
import socket
import threading
import urllib.parse

import pytest

from cluster import ready
from conftest import API_KEY, free_ports, proc_title, wait_until
from ipcframes import IPC, TS, FakeWorker, deliver_frame, ipc_str

EPOCH = "0123456789abcdef"
EPOCH2 = "fedcba9876543210"

NAMESPACES = """
[namespace race]
subscribe = public
publish = public
history_size = 100
"""


# ---- the primary's stand-in --------------------------------------------------------

class Primary:
    """Answers the primary's cluster API from rooms the test fills: heads,
    publish (numbered here), other ops (echoed), frames, and any other path
    (echoed, for op http). Everything asked is recorded."""

    def __init__(self):
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.rooms = {}            # room -> {"epoch": str, "frames": {seq: bytes}}
        self.requests = []         # op bodies of /api/cluster/request, parsed
        self.raw_requests = []     # and as received
        self.frames_asked = []     # (room, after, limit)
        self.other = []            # (method, path, body) of any other call
        self.auth = set()
        self.conns = []            # connections kept alive, closed by stop()
        self.lock = threading.Lock()
        self.server = None

    def add(self, room, seq, epoch=EPOCH, **kw):
        """Stores message seq of room (as if committed) and returns its frame."""
        frame = deliver_frame(room, seq, epoch, **kw)
        with self.lock:
            r = self.rooms.setdefault(room, {"epoch": epoch, "frames": {}})
            if r["epoch"] != epoch:
                r.update(epoch=epoch, frames={})
            r["frames"][seq] = frame
        return frame

    def head(self, room):
        r = self.rooms.get(room)
        return (r["epoch"], max(r["frames"], default=0)) if r else ("", 0)

    def ops(self, op):
        with self.lock:
            return [q for q in self.requests if q.get("op") == op]

    def start(self):
        primary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with primary.lock:
                    primary.conns.append(self.connection)

            def reply(self, status, body, ctype="application/json", headers=()):
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                primary.auth.add(self.headers.get("Authorization"))
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/api/cluster/frames":
                    with primary.lock:
                        primary.other.append(("GET", self.path, b""))
                    return self.reply(200, {"echo": self.path})
                q = dict(urllib.parse.parse_qsl(url.query))
                room, after, limit = q["room"], int(q["after"]), int(q["limit"])
                with primary.lock:
                    primary.frames_asked.append((room, after, limit))
                    epoch, last = primary.head(room)
                    frames = primary.rooms.get(room, {"frames": {}})["frames"]
                    body = b"".join([frames[s] for s in sorted(frames) if s > after][:limit])
                self.reply(200, body, "application/octet-stream",
                           [("X-Herald-Epoch", epoch), ("X-Herald-Last-Seq", str(last))])

            def do_POST(self):
                primary.auth.add(self.headers.get("Authorization"))
                raw = self.body()
                if self.path != "/api/cluster/request":
                    with primary.lock:
                        primary.other.append(("POST", self.path, raw))
                    return self.reply(201, {"echo": self.path})
                q = json.loads(raw)
                with primary.lock:
                    primary.requests.append(q)
                    primary.raw_requests.append(raw)
                    if q["op"] == "heads":
                        heads = {}
                        for room in q["rooms"]:
                            epoch, seq = primary.head(room)
                            heads[room] = {"epoch": epoch, "seq": seq}
                        return self.reply(200, {"heads": heads})
                    if q["op"] == "publish":
                        room = q["rooms"][0]
                        epoch, seq = primary.head(room)
                        return self.reply(200, {"room": room, "seq": seq + 1,
                                                "epoch": epoch or EPOCH})
                self.reply(200, {"op": q["op"], "answered": "by the primary"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        """Down: nothing listens, and the connections kept alive are closed."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []


# ---- an edge --------------------------------------------------------------------------

class Cluster:
    """redis-server, the primary's stand-in (advertised in Redis) and the
    edges the test starts."""

    def __init__(self, redis, herald_factory):
        self.redis = redis
        self.primary = Primary().start()
        self.advertise()
        self.herald_factory = herald_factory

    def advertise(self):
        self.redis.call("SET", "herald:primary", self.primary.url)

    def edge(self, workers=2):
        return self.herald_factory(workers=workers, namespaces=NAMESPACES, extra=f"""
cluster_redis = {self.redis.url}/0
node_role = edge
node_name = edge-t
""").start()

    def publish(self, room, frame):
        return self.redis.call("PUBLISH", f"herald:room:{room}", frame)

    def xadd(self, room, seq, frame):
        self.redis.call("XADD", f"herald:log:{room}", f"{seq}-0", "f", frame)


@pytest.fixture
def cluster(redis_server, herald_factory):
    c = Cluster(redis_server, herald_factory)
    yield c
    c.primary.stop()


def publish_live(cluster, room, frame):
    """PUBLISHes frame as the primary would; the relay has subscribed by the
    time a client's subscribe is answered, so it is there to receive it."""
    assert cluster.publish(room, frame) == 1


# ---- tests ----------------------------------------------------------------------------

def test_edge_processes_and_cluster_view(cluster):
    edge = cluster.edge()
    titles = {proc_title(p): p for p in edge.child_pids()}
    assert sorted(titles) == ["heraldd: relay", "heraldd: worker 1", "heraldd: worker 2"]
    relay = titles["heraldd: relay"]
    files = [os.readlink(f"/proc/{relay}/fd/{fd}") for fd in os.listdir(f"/proc/{relay}/fd")]
    assert not [f for f in files if f.startswith(edge.db)], files   # no database
    c = edge.client()
    c.subscribe("race:v")

    def node():
        h = cluster.redis.call("HGETALL", "herald:node:edge-t") or []
        d = {h[i].decode(): h[i + 1].decode() for i in range(0, len(h), 2)}
        return d if d.get("link") == "up" and d.get("connections") == "1" else None
    d = wait_until(node, timeout=5)
    assert d, cluster.redis.call("HGETALL", "herald:node:edge-t")
    assert d["role"] == "edge" and d["api"] == f"http://127.0.0.1:{edge.admin_port}"
    assert d["lag"] == "0" and int(d["updated_ms"]) > 0 and "deliveries_per_sec" in d
    assert b"edge-t" in cluster.redis.call("SMEMBERS", "herald:nodes")
    assert 0 < cluster.redis.call("TTL", "herald:node:edge-t") <= 10

    st = edge.api("GET", "/api/stats").json()
    assert st["connections"] == 1
    me = wait_until(lambda: [n for n in edge.api("GET", "/api/stats").json()["cluster"]["nodes"]
                             if n["name"] == "edge-t"], timeout=5)
    assert me and me[0]["role"] == "edge" and me[0]["link"] == "up"
    cl = st["relay"]
    assert cl["link"] == {"redis": "up", "primary": "up"}
    assert cl["lag"] == 0 and cl["rooms_followed"] == 2    # global and race:v
    conns = edge.api("GET", "/api/connections").json()["connections"]
    assert [sorted(x["rooms"]) for x in conns] == [["global", "race:v"]]
    assert cluster.primary.auth == {f"Bearer {API_KEY}"}
    c.close()


def test_live_messages_in_order_duplicates_dropped(cluster):
    room = "race:live"
    for s in range(1, 6):
        cluster.primary.add(room, s)
    edge = cluster.edge()
    c = edge.client()
    sub = c.subscribe(room)
    assert (sub["seq"], sub["epoch"]) == (5, EPOCH)       # the primary's head
    heads = cluster.primary.ops("heads")
    assert any(room in q["rooms"] for q in heads)
    for s in [5, 6, 7, 7, 3, 6, 8]:
        publish_live(cluster, room, cluster.primary.add(room, s, data=b'{"n":%d}' % s))
    c.wait_seq(room, 8)
    publish_live(cluster, room, cluster.primary.add(room, 9))
    c.wait_seq(room, 9)
    c.drain(0.3)
    assert c.seqs(room) == [6, 7, 8, 9]
    assert [e["data"] for e in c.events(room)][:3] == [{"n": 6}, {"n": 7}, {"n": 8}]
    assert all(e["epoch"] == EPOCH and e["ts"] == TS for e in c.events(room))
    assert cluster.primary.frames_asked == []             # nothing was missing
    c.close()


def test_the_same_bytes_reach_every_worker(cluster):
    room = "race:bytes"
    edge = cluster.edge()
    w = FakeWorker(edge)
    assert w.join(room) == (room, "", 0)                  # never published
    w2 = FakeWorker(edge, slot=62)
    assert w2.join(room) == (room, "", 0)                 # a ready room answers at once
    frames = [deliver_frame(room, s, EPOCH, event="e%d" % s) for s in (1, 2)]
    for f in frames:
        publish_live(cluster, room, f)
    assert w.deliveries(2) == frames
    assert w2.deliveries(2) == frames
    w.close()
    w2.close()


def test_room_forgotten_after_the_last_worker_leaves(cluster):
    room = "race:leave"
    edge = cluster.edge()
    w, w2 = FakeWorker(edge), FakeWorker(edge, slot=62)

    def subscribers():
        return cluster.redis.call("PUBSUB", "NUMSUB", f"herald:room:{room}")[1]
    w.join(room)
    w2.join(room)
    assert subscribers() == 1
    w.send(IPC["IPC_ROOM_LEAVE"], ipc_str(room.encode()))
    publish_live(cluster, room, deliver_frame(room, 1, EPOCH))
    assert w2.deliveries(1) == [deliver_frame(room, 1, EPOCH)]
    with pytest.raises(AssertionError):
        w.recv(IPC["IPC_DELIVER"], timeout=0.3)           # it left
    w2.close()                                            # its link gone: its rooms too
    assert wait_until(lambda: subscribers() == 0, timeout=5)
    assert wait_until(lambda: edge.api("GET", "/api/stats").json()["relay"]["rooms_followed"] == 0,
                      timeout=5)
    w.close()


def test_gap_filled_from_the_stream(cluster):
    room = "race:stream"
    edge = cluster.edge()
    c = edge.client()
    assert c.subscribe(room)["seq"] == 0
    f = {s: cluster.primary.add(room, s) for s in range(1, 6)}
    for s in (1, 2, 3, 4):
        cluster.xadd(room, s, f[s])
    publish_live(cluster, room, f[1])
    publish_live(cluster, room, f[4])                   # 2 and 3 only in the stream
    publish_live(cluster, room, f[5])
    c.wait_seq(room, 5)
    c.drain(0.3)
    assert c.seqs(room) == [1, 2, 3, 4, 5]
    assert cluster.primary.frames_asked == []
    c.close()


def test_gap_filled_from_the_primary(cluster):
    room = "race:prim"
    edge = cluster.edge()
    c = edge.client()
    assert c.subscribe(room)["seq"] == 0
    f = {s: cluster.primary.add(room, s) for s in range(1, 7)}
    cluster.xadd(room, 4, f[4])                           # the stream lacks 2 and 3
    publish_live(cluster, room, f[1])
    c.wait_seq(room, 1)
    publish_live(cluster, room, f[5])
    c.wait_seq(room, 6)                                   # 6 too: the primary had it
    publish_live(cluster, room, f[6])
    c.drain(0.3)
    assert c.seqs(room) == [1, 2, 3, 4, 5, 6]
    assert (room, 1, 512) in cluster.primary.frames_asked
    c.close()


def test_quiet_room_caught_up_from_the_heads(cluster):
    """A message committed on the primary that never reached Redis (it died
    between commit and publish) reaches the edge within a few seconds."""
    room = "race:quiet"
    cluster.primary.add(room, 1)
    edge = cluster.edge()
    c = edge.client()
    assert c.subscribe(room)["seq"] == 1
    cluster.primary.add(room, 2)
    cluster.primary.add(room, 3)
    c.wait_seq(room, 3, timeout=6)
    assert c.seqs(room) == [2, 3]
    c.close()


def test_room_reset_on_the_primary(cluster):
    """Another epoch: the workers are told the room starts again, and get
    its messages from seq 1."""
    room = "race:reset"
    for s in (1, 2, 3):
        cluster.primary.add(room, s)
    edge = cluster.edge()
    w = FakeWorker(edge)
    assert w.join(room) == (room, EPOCH, 3)
    f1 = cluster.primary.add(room, 1, EPOCH2)
    f2 = cluster.primary.add(room, 2, EPOCH2)
    cluster.xadd(room, 1, f1)
    publish_live(cluster, room, f2)
    assert w.state() == (room, EPOCH2, 0)
    assert w.deliveries(2) == [f1, f2]
    w.close()


def test_client_publish_forwarded_to_the_primary(cluster):
    room = "race:pub"
    cluster.primary.add(room, 41)
    edge = cluster.edge()
    c = edge.client()
    c.send('{"type":"publish","id":"p1","room":"race:pub","event":"bet","data":{"odds": 1.50}}')
    r = c.expect(id="p1")
    assert r == {"type": "published", "id": "p1", "room": room, "seq": 42, "epoch": EPOCH}
    q = cluster.primary.ops("publish")[-1]
    assert q["rooms"] == [room] and q["event"] == "bet" and q["from_client"] is True
    raw = [r for r in cluster.primary.raw_requests if r.startswith(b'{"op":"publish"')][-1]
    assert b'"data":{"odds": 1.50}' in raw                # verbatim
    key = q["idempotency_key"]
    assert key.startswith("edge-t/")
    c.send('{"type":"publish","id":"p2","room":"race:pub","event":"bet","data":2}')
    c.expect(id="p2")
    assert cluster.primary.ops("publish")[-1]["idempotency_key"] not in (key, None)

    r = edge.publish(room, "news", {"x": 1}, idempotency_key="k-1")
    assert r.status_code == 200 and r.json() == {"room": room, "seq": 42, "epoch": EPOCH}
    q = cluster.primary.ops("publish")[-1]
    assert q == {"op": "publish", "rooms": [room], "event": "news", "data": {"x": 1},
                 "idempotency_key": "k-1", "from_client": False}
    c.close()


def test_publish_unavailable_without_the_primary(cluster):
    room = "race:down"
    edge = cluster.edge()
    c = edge.client()
    cluster.primary.stop()
    c.send({"type": "publish", "id": "p1", "room": room, "event": "e", "data": 1})
    r = c.expect(id="p1", timeout=8)
    assert r["type"] == "error" and r["code"] == "unavailable"
    r = edge.publish(room)
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"

    # No primary advertised at all: not ready, and publishes fail at once.
    cluster.redis.call("DEL", "herald:primary")
    assert wait_until(lambda: ready(edge) == 503, timeout=5)
    r = edge.publish(room)
    assert r.status_code == 503
    assert edge.api("GET", "/api/stats").json()["relay"]["link"]["primary"] == "down"
    cluster.primary.start()
    cluster.advertise()
    assert wait_until(lambda: edge.publish(room).status_code == 200, timeout=5)
    c.close()


def test_requests_forwarded_and_answered_locally(cluster):
    edge = cluster.edge()
    w = FakeWorker(edge)
    status, body = w.request({"op": "http", "method": "GET", "path": "/api/workflows?x=1"})
    assert (status, json.loads(body)) == (200, {"echo": "/api/workflows?x=1"})
    status, body = w.request({"op": "http", "method": "POST", "path": "/api/notifications",
                              "body": '{"user":"u"}'})
    assert status == 201 and cluster.primary.other[-1] == ("POST", "/api/notifications",
                                                           b'{"user":"u"}')
    status, body = w.request({"op": "notify", "users": ["a"], "event": "e"})
    assert (status, json.loads(body)) == (200, {"op": "notify", "answered": "by the primary"})
    assert cluster.primary.ops("notify")[-1] == {"op": "notify", "users": ["a"], "event": "e"}
    status, body = w.request({"op": "stats"})
    assert status == 200 and "relay" in json.loads(body)
    status, body = w.request({"op": "connections"})
    assert status == 200 and json.loads(body) == {"connections": []}
    assert cluster.primary.ops("stats") == cluster.primary.ops("connections") == []
    w.close()


def test_history_from_the_stream_else_the_primary(cluster):
    room = "race:hist"
    f = {s: cluster.primary.add(room, s) for s in range(1, 6)}
    for s in (3, 4, 5):
        cluster.xadd(room, s, f[s])
    edge = cluster.edge()
    w = FakeWorker(edge)
    status, body = w.request({"op": "history", "room": room, "after": 2, "limit": 512})
    assert (status, body) == (200, f[3] + f[4] + f[5])
    assert cluster.primary.frames_asked == []
    status, body = w.request({"op": "history", "room": room, "after": 0, "limit": 2})
    assert (status, body) == (200, f[1] + f[2])           # the stream starts at 3
    assert cluster.primary.frames_asked == [(room, 0, 2)]
    status, body = w.request({"op": "history", "room": room, "after": 5, "limit": 10})
    assert (status, body) == (200, b"")
    cluster.primary.stop()
    status, body = w.request({"op": "history", "room": room, "after": 0, "limit": 10})
    assert status == 503 and json.loads(body)["error"]["code"] == "unavailable"
    w.close()


def test_redis_restart(cluster):
    room = "race:restart"
    cluster.primary.add(room, 1)
    edge = cluster.edge()
    c = edge.client()
    assert c.subscribe(room)["seq"] == 1
    publish_live(cluster, room, cluster.primary.add(room, 2))
    c.wait_seq(room, 2)

    cluster.redis.kill()
    assert wait_until(lambda: ready(edge) == 503, timeout=5)
    assert edge.api("GET", "/api/stats").json()["relay"]["link"]["redis"] == "down"
    cluster.primary.add(room, 3)                          # committed while Redis was away
    cluster.primary.add(room, 4)
    cluster.redis.start()
    cluster.advertise()
    assert wait_until(lambda: ready(edge) == 200, timeout=5)
    c.wait_seq(room, 4, timeout=6)                        # the gap, from the primary
    assert wait_until(lambda: cluster.publish(room, cluster.primary.add(room, 5)) == 1 or None,
                      timeout=5)
    c.wait_seq(room, 5)
    c.drain(0.3)
    assert c.seqs(room) == [2, 3, 4, 5]
    c.close()


def test_many_rooms_heads_batched(cluster):
    edge = cluster.edge()
    w = FakeWorker(edge)
    rooms = [f"race:m{i}" for i in range(1500)]
    cluster.primary.add(rooms[-1], 7)
    for room in rooms:
        w.send(IPC["IPC_ROOM_JOIN"], ipc_str(room.encode()))
    states = {}
    while len(states) < len(rooms):
        room, epoch, seq = w.state(timeout=10)
        states[room] = (epoch, seq)
    assert states[rooms[-1]] == (EPOCH, 7) and states[rooms[0]] == ("", 0)
    # Every two seconds the heads of all rooms are asked again, 1000 at most a call.
    before = len(cluster.primary.ops("heads"))

    def again():
        later = [q["rooms"] for q in cluster.primary.ops("heads")[before:]]
        return later if sum(len(r) for r in later) >= len(rooms) else None
    later = wait_until(again, timeout=5)
    assert later and max(len(r) for r in later) == 1000
    assert set(rooms) == {room for r in later for room in r}
    w.close()
