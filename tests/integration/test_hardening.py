"""Defaults that fit together, and a full database: what a well-behaved
client may do is never refused as abuse, and a write that cannot be stored
is answered 503 without losing anything acknowledged or dropping clients."""
import json
import os
import resource
import signal
import socket
import subprocess
import threading

import pytest

from conftest import API_KEY, HERALD_BENCH, wait_until


def test_full_room_allowance_one_subscribe_at_a_time(herald):
    """Defaults: 100 rooms, a burst of 100 messages. global takes one room."""
    c = herald.client()
    c.send_many([{"type": "subscribe", "room": f"race:{i}", "id": i} for i in range(100)])
    assert c.expect("error", id=99)["code"] == "too_many_rooms"
    for i in range(99):
        assert c.expect("subscribed", id=i)["room"] == f"race:{i}"
    assert not [m for m in c.messages if m.get("code") == "rate_limited"]
    assert c.call("ping")["type"] == "pong"
    c.close()


def test_superseded_publish_is_answered_after_its_replacement_commits(herald):
    """odds has throttle_ms = 300: the first publish opens a window, the two
    inside it wait, and the newer replaces the older."""
    assert herald.publish("odds:5", "tick", {"n": 0}).json()["seq"] == 1
    answers, seen = {}, {}

    def publish(n):
        session = herald.api_session()
        r = session.post(herald.admin_url("/api/publish"),
                         json={"room": "odds:5", "event": "tick", "data": {"n": n}}, timeout=10)
        answers[n] = r.json()
        # What the room holds at the moment the answer arrived.
        seen[n] = [m["data"]["n"] for m in
                   session.get(herald.admin_url("/api/rooms/odds:5/history")).json()["messages"]]

    threads = [threading.Thread(target=publish, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    loser = next(n for n in (1, 2) if answers[n].get("superseded"))
    winner = 3 - loser
    assert answers[winner]["seq"] == 2 and answers[loser]["seq"] is None
    # Answered only once the publish that replaced it was stored.
    assert winner in seen[loser]
    assert seen[loser] == [0, winner]


def test_full_database_answers_503_and_recovers(herald_factory):
    h = herald_factory(extra="max_database_size = 256k").start()
    watcher = h.client()
    watcher.subscribe("race:full")
    session = h.api_session()
    payload = {"blob": "x" * 4000}
    acked, refused = [], 0
    for i in range(400):
        r = session.post(h.admin_url("/api/publish"),
                         json={"room": "race:full", "event": "e", "data": dict(payload, i=i)},
                         timeout=10)
        if r.status_code == 200:
            acked.append(r.json()["seq"])
        else:
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            refused += 1
            if refused >= 20:
                break
    assert acked and refused >= 20
    assert "full" in h.read_log()
    # Clients stay connected, and got exactly what was acknowledged.
    assert watcher.call("ping")["type"] == "pong"
    watcher.wait_seq("race:full", acked[-1], timeout=10)
    assert watcher.seqs("race:full") == acked == list(range(1, len(acked) + 1))
    # Space comes back (here: a higher cap on SIGHUP); writes resume by themselves.
    h.write_config("max_database_size = 0")
    os.kill(h.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: session.post(h.admin_url("/api/publish"), json={
        "room": "race:full", "event": "e", "data": {"after": 1}}, timeout=10).status_code == 200, 10)
    stored = [row["seq"] for row in h.sqlite(
        "SELECT m.seq FROM messages m JOIN rooms r ON r.id = m.room_id "
        "WHERE r.name = 'race:full' ORDER BY m.seq")]
    assert stored[:len(acked)] == acked
    assert stored[len(acked)] == acked[-1] + 1
    watcher.wait_seq("race:full", stored[-1], timeout=10)
    assert watcher.seqs("race:full") == stored
    watcher.close()


def test_idle_handshake_flood_does_not_lock_clients_out(herald):
    """10,000 sockets from one address that never send a byte, beside an
    established client and a new one: both are served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 12000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(hard, 12000), 1 << 20), hard))
    before = herald.client()
    before.subscribe("race:flood")
    flood = []
    try:
        for _ in range(10000):
            flood.append(socket.create_connection(("127.0.0.1", herald.port), timeout=5))
        # Each worker holds at most max_handshakes (4096) of them.
        def settled():
            hs = herald.api("GET", "/api/stats").json()["handshakes"]
            return hs["open"] + hs["evicted"] == 10000 and hs
        hs = wait_until(settled, 15) and settled()
        assert hs and hs["open"] <= 2 * 4096 and hs["evicted"] >= 10000 - 2 * 4096, hs
        late = herald.client()
        late.subscribe("race:flood")
        seq = herald.publish("race:flood", "e", {"ok": 1}).json()["seq"]
        for c in (before, late):
            c.wait_seq("race:flood", seq, timeout=10)
            assert c.call("ping")["type"] == "pong"
        late.close()
    finally:
        for s in flood:
            s.close()
    before.close()


def test_rooms_cost_nothing_until_their_first_message(herald):
    loaded = herald.api("GET", "/api/stats").json()["rooms_loaded"]
    watchers = [herald.client() for _ in range(6)]      # over both workers
    for w in watchers:
        sub = w.subscribe("race:lazy")
        assert sub["seq"] == 0 and sub["epoch"] == "" and sub["recovered"] is True
    history = herald.api("GET", "/api/rooms/race:lazy/history")
    assert history.status_code == 404 or history.json()["messages"] == []
    assert herald.sqlite("SELECT name FROM rooms WHERE name = 'race:lazy'") == []
    assert herald.api("GET", "/api/stats").json()["rooms_loaded"] == loaded
    assert herald.api("GET", "/api/rooms/race:lazy").json() == {
        "room": "race:lazy", "epoch": "", "seq": 0, "first_seq": 0, "subscribers": 6}
    assert herald.api("GET", "/api/rooms/race:nobody").status_code == 404
    # One of them goes away before anything was published, knowing {seq 0, epoch ""}.
    gone = watchers.pop()
    gone.close()
    seqs = [herald.publish("race:lazy", "e", {"n": n}).json()["seq"] for n in range(3)]
    assert seqs == [1, 2, 3]
    for w in watchers:
        w.wait_seq("race:lazy", 3, timeout=10)
        assert w.seqs("race:lazy") == [1, 2, 3]
    (row,) = herald.sqlite("SELECT epoch, last_seq FROM rooms WHERE name = 'race:lazy'")
    assert row["last_seq"] == 3
    assert {e["epoch"] for w in watchers for e in w.events("race:lazy")} == {row["epoch"]}
    back = herald.client()
    sub = back.subscribe("race:lazy", since={"seq": 0, "epoch": ""})
    assert sub["recovered"] is True and sub["replayed"] == 3 and sub["epoch"] == row["epoch"]
    assert back.seqs("race:lazy") == [1, 2, 3]
    # Subscribers counted all along, though the room did not exist.
    assert herald.api("GET", "/api/rooms/race:lazy").json()["subscribers"] == 6
    for w in watchers + [back]:
        w.close()


@pytest.mark.parametrize("kind, closes", [("oversized", "1009"), ("flood", "1008"),
                                          ("subscribe", None), ("badtoken", None)])
def test_abusive_clients_cost_the_others_nothing(herald, kind, closes):
    """herald-bench abuse: attackers reconnecting as fast as they are dropped,
    beside control subscribers that must lose nothing."""
    out = subprocess.run([HERALD_BENCH, "abuse", "--kind", kind, "--connections", "50",
                          "--duration", "2", "--subscribers", "5", "--rate", "50",
                          "--room", "race:abuse", "--ws-url", f"127.0.0.1:{herald.port}",
                          "--api-url", f"127.0.0.1:{herald.admin_port}", "--api-key", API_KEY,
                          "--quiet"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["control"]["lost"] == 0 and res["control"]["published"] == 100
    attack = res["attack"]
    if closes:
        assert attack["close_codes"].get(closes, 0) > 0, attack
    if kind == "badtoken":
        assert attack["refused"] > 0
    if kind in ("flood", "subscribe"):
        assert attack["errors"] > 0
    # The storm of new rooms left no room behind.
    if kind == "subscribe":
        assert herald.sqlite("SELECT count(*) AS n FROM rooms WHERE name LIKE 'race:storm-%'") \
            == [{"n": 0}]
    assert herald.client().call("ping")["type"] == "pong"
