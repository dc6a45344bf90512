"""Scale-out on Redis, end to end: a real redis-server, a primary and two
edges on loopback. Every client's sequence is checked for gaps and
duplicates against the primary's database."""
import json
import os
import signal
import threading
import time

import pytest

from cluster import Cluster, ready, relay_pid
from conftest import make_token, pump_all, wait_until


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def stored_seqs(c, room):
    return [r["seq"] for r in c.primary.sqlite(
        "SELECT m.seq FROM messages m JOIN rooms r ON r.id = m.room_id "
        f"WHERE r.name = '{room}' ORDER BY m.seq")]


def last_seq(c, room):
    return c.primary.sqlite(f"SELECT last_seq FROM rooms WHERE name = '{room}'")[0]["last_seq"]


def subscribed(h, room, since=None):
    cl = h.client()
    msg = cl.subscribe(room, since=since)
    return cl, msg


def wait_all(clients, room, n, timeout=30):
    """Until every client has n events of room; fails with what each has."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(len(c.events(room)) >= n for c in clients):
            return
        pump_all(clients, 0.1)
    raise AssertionError(f"{room}: wanted {n} events, got "
                         f"{[len(c.events(room)) for c in clients]}")


def assert_contiguous(cl, room, first, last):
    assert cl.seqs(room) == list(range(first, last + 1)), cl.seqs(room)


def test_publish_through_any_node_reaches_every_edge(cluster):
    a, b = cluster.edges
    sub_a, _ = subscribed(a, "race:1")
    sub_p, _ = subscribed(cluster.primary, "race:1")
    r1 = b.publish("race:1", data={"via": "edge b"})
    assert r1.status_code == 200, r1.text
    r2 = cluster.primary.publish("race:1", data={"via": "primary"})
    assert r2.status_code == 200, r2.text
    assert [r1.json()["seq"], r2.json()["seq"]] == [1, 2]
    assert r1.json()["epoch"] == r2.json()["epoch"]
    for cl in (sub_a, sub_p):
        events = cl.wait_events("race:1", 2)
        assert [e["seq"] for e in events] == [1, 2]
        assert [e["data"]["via"] for e in events] == ["edge b", "primary"]
        assert {e["epoch"] for e in events} == {r1.json()["epoch"]}
    assert stored_seqs(cluster, "race:1") == [1, 2]


def test_client_publish_on_an_edge_is_acknowledged_after_the_primary_commits(cluster):
    a = cluster.edges[0]
    tok = make_token("ann")
    cl = a.client(token=tok)
    cl.subscribe("chat:lobby")
    ack = cl.call("publish", room="chat:lobby", event="said", data={"t": "hi"})
    assert ack["type"] == "published" and ack["seq"] == 1, ack
    assert stored_seqs(cluster, "chat:lobby") == [1]
    cl.wait_events("chat:lobby", 1)


def test_a_thousand_publishes_over_three_apis_reach_every_node_in_order(cluster):
    rooms = ["race:a", "race:b", "race:c"]
    subs = []
    for h in cluster.nodes:
        for _ in range(2):
            cl = h.client()
            for room in rooms:
                cl.subscribe(room)
            subs.append(cl)
    errors = []

    def storm(node, n):
        s = node.api_session()
        for i in range(n):
            r = s.post(node.admin_url("/api/publish"),
                       json={"room": rooms[i % 3], "event": "tick", "data": {"i": i}})
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=storm, args=(h, 334 if i == 0 else 333))
               for i, h in enumerate(cluster.nodes)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        pump_all(subs, 0.05)
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    totals = {room: len(stored_seqs(cluster, room)) for room in rooms}
    assert sum(totals.values()) == 1000
    for room in rooms:
        wait_all(subs, room, totals[room])
        for cl in subs:
            assert_contiguous(cl, room, 1, totals[room])


def test_resume_on_another_edge(cluster):
    a, b = cluster.edges
    cl, _ = subscribed(a, "race:9")
    for i in range(5):
        assert cluster.primary.publish("race:9", data={"i": i}).status_code == 200
    events = cl.wait_events("race:9", 5)
    epoch = events[-1]["epoch"]
    cl.close()
    for i in range(5, 12):
        assert cluster.edges[1].publish("race:9", data={"i": i}).status_code == 200
    back = b.client()
    ok = back.subscribe("race:9", since={"seq": 5, "epoch": epoch})
    assert ok["recovered"] is True and ok["seq"] == 12, ok
    got = back.wait_events("race:9", 7)
    assert [e["seq"] for e in got] == list(range(6, 13))
    assert [e["data"]["i"] for e in got] == list(range(5, 12))
    back.drain(0.3)
    assert_contiguous(back, "race:9", 6, 12)


def test_redis_killed_during_a_publish_storm(cluster):
    subs = [subscribed(h, "race:storm")[0] for h in cluster.edges for _ in range(2)]
    stop = threading.Event()
    sent = []

    def storm():
        s = cluster.primary.api_session()
        while not stop.is_set() and len(sent) < 3000:
            r = s.post(cluster.primary.admin_url("/api/publish"),
                       json={"room": "race:storm", "event": "tick", "data": {}})
            assert r.status_code == 200, r.text
            sent.append(r.json()["seq"])

    t = threading.Thread(target=storm)
    t.start()
    try:
        wait_until(lambda: len(sent) > 200, timeout=10)
        cluster.redis.kill()
        time.sleep(1.0)
        cluster.redis.start()
        wait_until(lambda: len(sent) > 1200, timeout=20)
    finally:
        stop.set()
        t.join(30)
    total = len(sent)
    assert sent == list(range(1, total + 1)) and last_seq(cluster, "race:storm") == total
    wait_all(subs, "race:storm", total, timeout=60)
    for cl in subs:
        assert_contiguous(cl, "race:storm", 1, total)


def test_redis_restarted_empty_gaps_come_from_the_primary(cluster):
    a = cluster.edges[0]
    cl, _ = subscribed(a, "race:quiet")
    assert cluster.primary.publish("race:quiet").status_code == 200
    cl.wait_events("race:quiet", 1)
    cluster.redis.kill()
    for _ in range(40):   # committed while no edge can hear of it
        assert cluster.primary.publish("race:quiet").status_code == 200
    assert wait_until(lambda: ready(a) == 503, timeout=10), "an edge without Redis is not ready"
    refused = a.publish("race:quiet")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"
    cluster.redis.start()   # empty: no stream holds them
    assert wait_until(lambda: ready(a) == 200, timeout=15)
    # No new publish: the edge finds out by itself and fills from history.
    cl.wait_events("race:quiet", 41, timeout=20)
    assert_contiguous(cl, "race:quiet", 1, 41)


def test_an_edge_killed_its_clients_resume_on_the_other(cluster):
    a, b = cluster.edges
    cl, _ = subscribed(a, "race:move")
    for _ in range(3):
        cluster.primary.publish("race:move")
    ev = cl.wait_events("race:move", 3)
    a.kill_all()
    for _ in range(4):
        assert cluster.primary.publish("race:move").status_code == 200
    cl.expect_close(timeout=5)
    back = b.client()
    back.subscribe("race:move", since={"seq": 3, "epoch": ev[-1]["epoch"]})
    back.wait_events("race:move", 4)
    cluster.primary.publish("race:move")
    back.wait_events("race:move", 5)
    back.drain(0.3)
    assert_contiguous(back, "race:move", 4, 8)


def test_primary_killed_edges_answer_503_keep_connections_then_deliver(cluster):
    a, b = cluster.edges
    cl, _ = subscribed(a, "race:p")
    assert cluster.primary.publish("race:p").status_code == 200
    cl.wait_events("race:p", 1)
    cluster.primary.kill_all()
    r = wait_until(lambda: (lambda r: r if r.status_code == 503 else None)(
        b.publish("race:p")), timeout=15)
    assert r is not None and r.json()["error"]["code"] == "unavailable"
    tok = make_token("pat")
    writer = a.client(token=tok)
    nack = writer.call("publish", room="chat:x", event="e", data={})
    assert nack["type"] == "error" and nack["code"] == "unavailable", nack
    assert cl.call("ping")["type"] == "pong"   # still connected
    cluster.primary.start()
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        b.publish("race:p")), timeout=20)
    assert r is not None and r.json()["seq"] == 2
    cl.wait_events("race:p", 2, timeout=15)
    assert_contiguous(cl, "race:p", 1, 2)
    assert not cl.closed


def test_relay_killed_is_restarted_and_rooms_resubscribed(cluster):
    a = cluster.edges[0]
    cl, _ = subscribed(a, "race:r")
    cluster.primary.publish("race:r")
    cl.wait_events("race:r", 1)
    old = relay_pid(a)
    assert old
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: (relay_pid(a) or old) != old, timeout=10)
    for _ in range(3):
        assert cluster.primary.publish("race:r").status_code == 200
    cl.wait_events("race:r", 4, timeout=20)
    assert_contiguous(cl, "race:r", 1, 4)


def test_cluster_stats_count_every_node(cluster):
    a, b = cluster.edges
    clients = [cluster.primary.client(token=make_token("u1")),
               a.client(token=make_token("u1")), a.client(token=make_token("u2")),
               b.client(token=make_token("u3")), b.client()]

    def view():
        st = cluster.primary.api("GET", "/api/stats").json().get("cluster")
        if st and len(st["nodes"]) == 3 and st["totalConnections"] == 5 and st["uniqueUsers"] == 3:
            return st
        return None
    st = wait_until(view, timeout=15)
    assert st, cluster.primary.api("GET", "/api/stats").json().get("cluster")
    by_name = {n["name"]: n for n in st["nodes"]}
    assert by_name["primary"]["role"] == "primary"
    assert by_name["edge0"]["role"] == "edge" and int(by_name["edge0"]["connections"]) == 2
    assert int(by_name["edge1"]["connections"]) == 2
    for cl in clients:
        cl.close()


def test_socketio_clients_on_an_edge(cluster):
    from test_socketio import Driver
    a = cluster.edges[0]
    d = Driver(a)
    try:
        for name, transports in (("ws", ["websocket"]), ("poll", ["polling"])):
            c = d.connect(name, transports=transports, auth={"token": make_token(name)})
            assert not c.get("recovered")   # a first connection is new
            ack = d.emit_ack(name, "subscribe", {"room": "race", "id": "s"})[0]
            assert ack["success"] is True and ack["room"] == "race:s", ack
        for i in range(3):
            assert cluster.primary.publish("race:s", "odds", {"i": i}).status_code == 200
        for name in ("ws", "poll"):
            evs = d.wait_events(name, "odds", 3)
            assert [e["args"][0]["seq"] for e in evs] == [1, 2, 3]
            assert [e["args"][0]["data"] for e in evs] == [{"i": 0}, {"i": 1}, {"i": 2}]
        # a client's publish goes to the primary and is acknowledged with its seq
        pub = d.emit_ack("ws", "publish", {"room": "chat:s", "event": "said", "data": {"t": 1}})[0]
        assert pub["success"] is True and pub["seq"] == 1, pub
        assert stored_seqs(cluster, "chat:s") == [1]
    finally:
        d.close()


# ---- Socket.IO connection state recovery on edges ---------------------------------------


def sio_receiving(cluster, d):
    """rita's socket "r" on d's node, in two rooms, with 2 events of each;
    returns its state."""
    from test_socketio import assert_exactly, expected, publish_both, recovery_setup
    st = recovery_setup(d.herald, d)
    publish_both(cluster.primary, 0, 2)
    assert_exactly(d.wait_events("r", "odds", 4), expected(1, 2))
    return st


def assert_recovered_then_live(cluster, d, st, missed):
    """"r" connects recovered, gets the `missed` events of each room published
    after the first 2 exactly once in gpos order, then live ones."""
    from test_socketio import assert_exactly, expected, publish_both
    c = d.wait(lambda m: m["ev"] == "connect" and m["name"] == "r", 20)
    assert c["recovered"] is True and c["id"] == st["id"], c
    assert_exactly(d.wait_events("r", "odds", 2 * missed), expected(3, missed))
    publish_both(cluster.primary, 2 + missed, 1)
    assert_exactly(d.wait_events("r", "odds", 2), expected(3 + missed, 1))
    time.sleep(0.3)
    assert d.events("r", "odds") == []


def test_socketio_recovery_from_one_edge_on_another(cluster):
    """More missed than the Redis streams hold (100 a room) and than one
    history request brings (256): the oldest come from the primary's history,
    in several chunks, merged in gpos order over both rooms."""
    from test_socketio import Driver, publish_both
    a, b = cluster.edges
    d = Driver(a)
    try:
        st = sio_receiving(cluster, d)
        d.send(cmd="pause", name="r")
        d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
        publish_both(cluster.primary, 2, 300)
        d.send(cmd="resume", name="r", url=f"http://127.0.0.1:{b.port}")
        assert_recovered_then_live(cluster, d, st, 300)
        conns = b.api("GET", "/api/connections").json()
        assert "rita" in json.dumps(conns), conns   # b holds it now
    finally:
        d.close()


def test_socketio_recovery_on_an_edge_after_its_workers_are_killed(cluster):
    from test_socketio import Driver, publish_both
    a = cluster.edges[0]
    d = Driver(a)
    try:
        st = sio_receiving(cluster, d)
        d.send(cmd="noreconnect", name="r")
        for pid in a.workers_pids():
            os.kill(pid, signal.SIGKILL)
        d.wait(lambda m: m["ev"] == "disconnect" and m["name"] == "r")
        a.wait_ready()
        publish_both(cluster.primary, 2, 3)
        d.send(cmd="resume", name="r")
        assert_recovered_then_live(cluster, d, st, 3)
    finally:
        d.close()


def test_socketio_recovery_on_an_edge_refused(cluster):
    """An unknown pid, or another user's, connects unrecovered, as new; the
    primary's route says why."""
    from test_socketio import Driver, recovery_setup
    a, b = cluster.edges
    d = Driver(a)
    try:
        st = recovery_setup(a, d)
        route = "/api/cluster/sio-session?pid=" + st["pid"]
        ok = cluster.primary.api("GET", route + "&user=rita")
        assert ok.status_code == 200, ok.text
        assert ok.json()["sid"] == st["id"]
        assert {"race:r1", "race:r2"} <= set(ok.json()["rooms"]), ok.text
        for q in ("&user=mallory", ""):
            assert cluster.primary.api("GET", route + q).status_code == 404, q
        assert cluster.primary.api("GET", route + "&offset=x").status_code == 400
        unknown = "/api/cluster/sio-session?pid=" + "ab" * 10 + "&user=rita"
        assert cluster.primary.api("GET", unknown).status_code == 404
        assert a.api("GET", route + "&user=rita").status_code == 404   # the primary's only
        for name, user, pid in (("u", "rita", "ab" * 10), ("m", "mallory", st["pid"])):
            d2 = Driver(b)
            try:
                c = d2.connect(name, transports=["websocket"],
                               auth={"token": make_token(user), "pid": pid, "offset": "1"})
                assert c["recovered"] is False and c["id"] != st["id"], c
                assert d2.state(name)["pid"] not in (pid, st["pid"])
                ack = d2.emit_ack(name, "subscribe", {"room": "race:r1"})[0]
                assert ack["success"] is True, ack
            finally:
                d2.close()
    finally:
        d.close()


def test_disconnecting_a_user_closes_it_on_every_node(cluster):
    a, b = cluster.edges
    tok = make_token("mallory")
    theirs = [cluster.primary.client(token=tok), a.client(token=tok), b.client(token=tok)]
    other = a.client(token=make_token("olivia"))
    # Through an edge's API: the primary disconnects and tells every edge.
    r = b.api("POST", "/api/users/mallory/disconnect")
    assert r.status_code == 200, r.text
    for cl in theirs:
        assert cl.expect_close(timeout=10) == 4008
    assert other.call("ping")["type"] == "pong"
    other.close()
