"""What a primary serves its edges (SPEC §15): POST /api/cluster/request, an
edge's upward traffic (a publish sequenced like any other, any other op passed
to the hub), and GET /api/cluster/frames, stored messages as the IPC_DELIVER
frames the hub routes. Run on a standalone daemon, which is a primary."""
import json

import pytest
import requests

from conftest import API_KEY, EPOCH_RE, TS_RE, poll
from ipcframes import deliver_frames


def cluster_request(h, body, key=API_KEY):
    """POST /api/cluster/request with body (an object, or raw bytes sent as they are)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(h.admin_url("/api/cluster/request"), data=data, headers=headers,
                         timeout=10)


def frames(h, query, key=API_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(h.admin_url("/api/cluster/frames" + query), headers=headers, timeout=10)


def stored(h, room):
    return h.sqlite("SELECT m.seq, m.event, m.data, m.ts, m.gpos FROM messages m "
                    f"JOIN rooms r ON r.id = m.room_id WHERE r.name = '{room}' ORDER BY m.seq")


def message_count(h):
    return h.sqlite("SELECT count(*) AS n FROM messages")[0]["n"]


# ---- POST /api/cluster/request -------------------------------------------------------------

def test_publish_answers_after_commit_and_delivers(shared_herald):
    h = shared_herald
    c = h.client()
    c.subscribe("race:cl-pub")
    data = {"odds": [1.5, 2.25], "name": "Zoë"}
    r = cluster_request(h, {"op": "publish", "rooms": ["race:cl-pub"], "event": "odds",
                            "data": data, "from_client": False})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body == {"room": "race:cl-pub", "seq": 1, "epoch": body["epoch"]}
    assert EPOCH_RE.match(body["epoch"])
    # acknowledged means committed: it is in the database and in history already
    rows = stored(h, "race:cl-pub")
    assert [(x["seq"], x["event"], json.loads(x["data"])) for x in rows] == [(1, "odds", data)]
    hist = h.api("GET", "/api/rooms/race:cl-pub/history").json()
    assert hist["epoch"] == body["epoch"] and hist["seq"] == 1
    assert [(m["seq"], m["event"], m["data"]) for m in hist["messages"]] == [(1, "odds", data)]
    ev = c.wait_events("race:cl-pub", 1)[0]
    assert (ev["seq"], ev["epoch"], ev["event"], ev["data"]) == (1, body["epoch"], "odds", data)
    c.close()


def test_publish_from_a_client_and_to_many_rooms(shared_herald):
    h = shared_herald
    r = cluster_request(h, {"op": "publish", "rooms": ["race:cl-m1", "race:cl-m2"],
                            "event": "e", "data": [1, 2], "from_client": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["room"], x["seq"]) for x in results] == [("race:cl-m1", 1), ("race:cl-m2", 1)]
    for room in ("race:cl-m1", "race:cl-m2"):
        assert [json.loads(x["data"]) for x in stored(h, room)] == [[1, 2]]


def test_publish_data_is_verbatim(shared_herald):
    """An edge's client published this text: the primary stores it byte for byte."""
    h = shared_herald
    data = '{"id":123456789012345678901234567890,"p":1.10,"s":"caf\\u00e9"}'
    raw = ('{"op":"publish","rooms":["race:cl-verbatim"],"event":"e","data":' + data +
           ',"from_client":true}').encode()
    r = cluster_request(h, raw)
    assert r.status_code == 200, r.text
    assert stored(h, "race:cl-verbatim")[0]["data"] == data


def test_publish_idempotency_key(shared_herald):
    h = shared_herald
    op = {"op": "publish", "rooms": ["race:cl-idem"], "event": "e", "data": {"n": 1},
          "idempotency_key": "cl-key-1", "from_client": False}
    first = cluster_request(h, op)
    assert first.status_code == 200, first.text
    again = cluster_request(h, {**op, "data": {"n": 2}})
    assert again.status_code == 200, again.text
    assert again.json()["seq"] == first.json()["seq"] == 1
    assert again.json()["epoch"] == first.json()["epoch"]
    assert [json.loads(x["data"]) for x in stored(h, "race:cl-idem")] == [{"n": 1}]
    other = cluster_request(h, {**op, "idempotency_key": "cl-key-2"})
    assert other.json()["seq"] == 2


def test_other_ops_go_to_the_hub_as_they_are(shared_herald):
    h = shared_herald
    assert h.publish("race:cl-room", "e", {}).status_code == 200
    assert h.publish("race:cl-room", "e", {}).status_code == 200
    r = cluster_request(h, {"op": "room", "room": "race:cl-room"})
    assert r.status_code == 200, r.text
    assert r.json() == h.api("GET", "/api/rooms/race:cl-room").json()
    assert r.json()["seq"] == 2
    # the hub's status comes back as it is
    r = cluster_request(h, {"op": "room", "room": "race:cl-never"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = cluster_request(h, {"op": "no-such-op"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = cluster_request(h, {"op": "stats"})
    assert r.status_code == 200 and len(r.json()["workers"]) == h.workers


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'"publish"', b'{"op":"publish",',
                                 b'{"op":"room","op":"stats"}', b"{}", b'{"op":7}'])
def test_bad_request_body(shared_herald, raw):
    r = cluster_request(shared_herald, raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("op", [
    {"rooms": "race:cl-bad", "event": "e", "data": {}},           # rooms not an array
    {"room": "race:cl-bad", "event": "e", "data": {}},            # room is the public API's
    {"rooms": [], "event": "e", "data": {}},
    {"rooms": ["race:cl-bad", "bad room"], "event": "e", "data": {}},
    {"rooms": ["race:cl-bad"], "data": {}},
    {"rooms": ["race:cl-bad"], "event": "e" * 129, "data": {}},
    {"rooms": ["race:cl-bad"], "event": "e", "data": {}, "idempotency_key": 5},
])
def test_bad_publish_stores_nothing(shared_herald, op):
    h = shared_herald
    before = message_count(h)
    r = cluster_request(h, {"op": "publish", "from_client": False, **op})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert message_count(h) == before


@pytest.mark.parametrize("key", [None, "wrong"])
def test_api_key_required(shared_herald, key):
    h = shared_herald
    before = message_count(h)
    r = cluster_request(h, {"op": "publish", "rooms": ["race:cl-key"], "event": "e", "data": {},
                            "from_client": False}, key=key)
    assert r.status_code == 401, r.text
    assert frames(h, "?room=race:cl-key", key=key).status_code == 401
    assert message_count(h) == before


def test_only_post_and_get_and_only_on_the_admin_listener(shared_herald):
    h = shared_herald
    assert h.api("GET", "/api/cluster/request").status_code == 404
    assert h.api("POST", "/api/cluster/frames?room=race:x").status_code == 404
    r = requests.get(f"http://127.0.0.1:{h.port}/api/cluster/frames?room=race:x",
                     headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert r.status_code == 404


# ---- GET /api/cluster/frames -------------------------------------------------------------------

def test_frames_are_what_subscribers_receive(shared_herald):
    h = shared_herald
    room = "race:cl-frames"
    c = h.client()
    c.subscribe(room)
    datas = [{"i": i, "s": "é" * i} for i in range(1, 8)] + [None, [1, "two"], "text"]
    epoch = None
    for i, d in enumerate(datas):
        r = h.publish(room, f"ev{i}", d) if d is not None else \
            h.api("POST", "/api/publish", {"room": room, "event": f"ev{i}"})
        assert r.status_code == 200, r.text
        epoch = r.json()["epoch"]
    c.wait_events(room, len(datas))
    live = [raw for raw, m in zip(c.raw, c.messages) if m.get("type") == "event"]
    c.close()

    r = frames(h, f"?room={room}&after=0")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-herald-epoch"] == epoch
    assert r.headers["x-herald-last-seq"] == str(len(datas))
    got = deliver_frames(r.content)
    rows = stored(h, room)
    assert [m["seq"] for m in got] == list(range(1, len(datas) + 1))
    for m, row, raw in zip(got, rows, live):
        assert (m["room"], m["epoch"]) == (room, epoch)
        assert m["gpos"] == row["gpos"] and m["gpos"] > 0
        # the payload is the client's event message, byte for byte
        assert m["payload"] == raw
        ev = json.loads(m["payload"])
        assert ev["seq"] == m["seq"] and ev["ts"] == row["ts"] and TS_RE.match(ev["ts"])
        # and the slices the Socket.IO frame is built from point into it
        p = m["payload"]
        assert p[m["event_off"]:m["event_off"] + m["event_len"]] == \
            json.dumps(row["event"]).encode()
        assert p[m["data_off"]:m["data_off"] + m["data_len"]] == row["data"].encode()
        assert p[m["ts_off"]:m["ts_off"] + 24] == row["ts"].encode()
    # global positions grow with the seqs
    assert [m["gpos"] for m in got] == sorted(m["gpos"] for m in got)


def test_frames_after_and_limit(shared_herald):
    h = shared_herald
    room = "race:cl-range"
    for i in range(20):
        assert h.publish(room, "e", {"i": i}).status_code == 200
    r = frames(h, f"?room={room}&after=4&limit=3")
    assert r.status_code == 200, r.text
    assert [m["seq"] for m in deliver_frames(r.content)] == [5, 6, 7]
    assert r.headers["x-herald-last-seq"] == "20"
    # without limit: everything after, ascending
    r = frames(h, f"?room={room}&after=12")
    assert [m["seq"] for m in deliver_frames(r.content)] == list(range(13, 21))
    assert [json.loads(m["payload"])["data"] for m in deliver_frames(r.content)] == \
        [{"i": i} for i in range(12, 20)]
    # nothing after the last seq
    r = frames(h, f"?room={room}&after=20")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["x-herald-last-seq"] == "20" and EPOCH_RE.match(r.headers["x-herald-epoch"])


def test_frames_limit_defaults_to_512(shared_herald):
    h = shared_herald
    room = "race:cl-many"
    s = h.api_session()
    for i in range(600):
        r = s.post(h.admin_url("/api/publish"), json={"room": room, "event": "e", "data": i},
                   timeout=10)
        assert r.status_code == 200, r.text
    got = deliver_frames(frames(h, f"?room={room}").content)
    assert [m["seq"] for m in got] == list(range(1, 513))
    got = deliver_frames(frames(h, f"?room={room}&after=100&limit=512").content)
    assert [m["seq"] for m in got] == list(range(101, 601))


def test_frames_of_a_room_never_published(shared_herald):
    r = frames(shared_herald, "?room=race:cl-nothing&after=0")
    assert r.status_code == 200, r.text
    assert r.content == b""
    assert r.headers["x-herald-epoch"] == "" and r.headers["x-herald-last-seq"] == "0"


def test_frames_only_what_retention_kept(herald):
    """Namespace small keeps 5 messages: the frames start at the oldest kept."""
    h = herald
    for i in range(9):
        assert h.publish("small:cl", "e", {"i": i}).status_code == 200

    def kept():
        return [x["seq"] for x in stored(h, "small:cl")]
    assert poll(kept, lambda v: v == [5, 6, 7, 8, 9], timeout=15) == [5, 6, 7, 8, 9]
    r = frames(h, "?room=small:cl&after=0")
    assert [m["seq"] for m in deliver_frames(r.content)] == [5, 6, 7, 8, 9]
    assert r.headers["x-herald-last-seq"] == "9"


@pytest.mark.parametrize("query", ["", "?after=0", "?room=", "?room=bad%20room",
                                   "?room=" + "r" * 201, "?room=race:x&limit=0",
                                   "?room=race:x&limit=513", "?room=race:x&limit=ten",
                                   "?room=race:x&after=-1", "?room=race:x&after=x"])
def test_frames_bad_query(shared_herald, query):
    r = frames(shared_herald, query)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
