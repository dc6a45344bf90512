"""Defaults that fit together, and a full database: what a well-behaved
client may do is never refused as abuse, and a write that cannot be stored
is answered 503 without losing anything acknowledged or dropping clients."""
import os
import signal
import threading

from conftest import wait_until


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
