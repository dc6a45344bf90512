"""The webhooks API and the outbox: endpoints are checked and kept, and every
stored message that an enabled endpoint matches gets exactly one delivery row,
committed with the message. Delivery itself is tested in test_webhooks.py;
here the endpoints point at a closed port, so nothing is ever delivered."""
import base64
import concurrent.futures
import json
import os
import time

import pytest

import subprocess

from conftest import HERALDCTL, free_ports

CLOSED = f"http://127.0.0.1:{free_ports(1)[0]}/hook"


def add(h, **body):
    body.setdefault("url", CLOSED)
    body.setdefault("events", ["*"])
    r = h.api("POST", "/api/webhooks", body)
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(h, wh, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = h.api("GET", f"/api/webhooks/{wh['id']}/deliveries" + (f"?{q}" if q else ""))
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def rows(h, wh):
    return h.sqlite("SELECT event, room, seq, body FROM webhook_deliveries "
                    f"WHERE endpoint_id = '{wh['id']}' ORDER BY id")


def test_create_shows_the_secret_once(herald):
    wh = add(herald, events=["order.*"], rooms=["order:*"], max_attempts=3, timeout_ms=500)
    assert wh["id"].startswith("wh_")
    assert wh["secret"].startswith("whsec_")
    assert len(base64.b64decode(wh["secret"][6:])) >= 24
    assert wh["events"] == ["order.*"] and wh["rooms"] == ["order:*"]
    assert wh["max_attempts"] == 3 and wh["timeout_ms"] == 500 and wh["enabled"] is True
    got = herald.api("GET", f"/api/webhooks/{wh['id']}").json()
    assert "secret" not in got and got["id"] == wh["id"]
    listed = herald.api("GET", "/api/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [wh["id"]]
    assert "secret" not in listed[0]
    # A given secret is kept as given.
    mine = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    assert add(herald, secret=mine)["secret"] == mine
    assert herald.sqlite(f"SELECT secret FROM webhook_endpoints WHERE secret = '{mine}'")


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/", "events": ["*"]}, "url"),
    ({"url": "http://", "events": ["*"]}, "url"),
    ({"url": "javascript:alert(1)", "events": ["*"]}, "url"),
    ({"events": ["*"]}, "url"),
    ({"url": CLOSED}, "events"),
    ({"url": CLOSED, "events": []}, "events"),
    ({"url": CLOSED, "events": ["ok", 5]}, "events"),
    ({"url": CLOSED, "events": ["*"], "rooms": "race:*"}, "rooms"),
    ({"url": CLOSED, "events": ["*"], "secret": "whsec_***"}, "secret"),
    ({"url": CLOSED, "events": ["*"], "max_attempts": 0}, "max_attempts"),
    ({"url": CLOSED, "events": ["*"], "timeout_ms": "fast"}, "timeout_ms"),
    ({"url": CLOSED, "events": ["*"], "enabled": "yes"}, "enabled"),
])
def test_bad_endpoints_are_refused(herald, body, field):
    r = herald.api("POST", "/api/webhooks", body)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"]
    assert herald.api("GET", "/api/webhooks").json()["webhooks"] == []


def test_unknown_ids_are_404(herald):
    for method, path in [("GET", "/api/webhooks/wh_nope"), ("DELETE", "/api/webhooks/wh_nope"),
                         ("PATCH", "/api/webhooks/wh_nope"),
                         ("GET", "/api/webhooks/wh_nope/deliveries"),
                         ("POST", "/api/webhooks/wh_nope/test"),
                         ("POST", "/api/webhooks/wh_nope/deliveries/msg_1/retry")]:
        r = herald.api(method, path, {} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    wh = add(herald)
    r = herald.api("POST", f"/api/webhooks/{wh['id']}/deliveries/msg_999/retry")
    assert r.status_code == 404
    assert herald.api("GET", "/api/webhooks", key="wrong").status_code == 401


def test_only_matching_messages_create_deliveries(herald):
    orders = add(herald, events=["order.*"])
    races = add(herald, events=["*"], rooms=["race:*"])
    exact = add(herald, events=["order.created"], rooms=["race:1", "user:*"])
    off = add(herald, events=["*"], enabled=False)
    assert off["enabled"] is False
    assert herald.publish("race:1", "order.created", {"n": 1}).status_code == 200
    assert herald.publish("race:2", "odds", {"n": 2}).status_code == 200
    assert herald.publish("market:1", "order.shipped", {"n": 3}).status_code == 200
    assert herald.publish("race:1", "orderXcreated", {"n": 4}).status_code == 200
    r = herald.api("POST", "/api/publish", {"rooms": ["race:7", "market:7"],
                                            "event": "order.paid", "data": [1, 2]})
    assert r.status_code == 200, r.text
    assert [(d["event"], d["room"]) for d in rows(herald, orders)] == [
        ("order.created", "race:1"), ("order.shipped", "market:1"),
        ("order.paid", "race:7"), ("order.paid", "market:7")]
    assert [(d["event"], d["room"], d["seq"]) for d in rows(herald, races)] == [
        ("order.created", "race:1", 1), ("odds", "race:2", 1),
        ("orderXcreated", "race:1", 2), ("order.paid", "race:7", 1)]
    assert [(d["event"], d["room"]) for d in rows(herald, exact)] == [("order.created", "race:1")]
    assert rows(herald, off) == []


def test_body_is_the_standard_webhooks_payload(herald):
    wh = add(herald)
    data = {"big": 123456789012345678901234567890, "s": "é\u2028", "list": [1.5, None]}
    r = herald.publish("race:9", "odds", data)
    assert r.status_code == 200
    (row,) = rows(herald, wh)
    body = json.loads(row["body"])
    assert set(body) == {"type", "timestamp", "data", "room", "seq"}
    assert body["type"] == "odds" and body["room"] == "race:9" and body["seq"] == 1
    assert body["data"] == data
    assert body["timestamp"].endswith("Z") and body["timestamp"][10] == "T"
    (d,) = deliveries(herald, wh)
    assert d["id"].startswith("msg_") and d["event"] == "odds" and d["room"] == "race:9"
    assert d["status"] in ("pending", "failed") and d["seq"] == 1


def test_duplicates_and_superseded_publishes_create_none(herald):
    wh = add(herald)
    for _ in range(3):
        r = herald.publish("race:1", "x", {}, idempotency_key="k1")
        assert r.status_code == 200
    # odds has throttle_ms = 300: of a burst, the first and the newest are stored.
    session = herald.api_session()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: session.post(herald.admin_url("/api/publish"), json={
            "room": "odds:1", "event": "tick", "data": {"i": i}}, timeout=10).json(), range(8)))
    stored = [a for a in answers if not a.get("superseded")]
    got = rows(herald, wh)
    assert [(d["room"], d["seq"]) for d in got if d["room"] == "race:1"] == [("race:1", 1)]
    assert sorted(d["seq"] for d in got if d["room"] == "odds:1") == \
        sorted(a["seq"] for a in stored)
    assert len(got) == 1 + len(stored)


def test_notifications_create_deliveries_in_user_rooms(herald):
    wh = add(herald, events=["notification"])
    r = herald.api("POST", "/api/notifications", {"users": ["ann", "bob"], "type": "t",
                                                  "title": "hello"})
    assert r.status_code == 200, r.text
    got = rows(herald, wh)
    assert [(d["room"], d["seq"]) for d in got] == [("user:ann", 1), ("user:bob", 1)]
    assert json.loads(got[0]["body"])["data"]["title"] == "hello"


def test_patch_disables_rotates_and_delete_drops(herald):
    wh = add(herald)
    r = herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["disabled_reason"] == "api" and "secret" not in r.json()
    herald.publish("race:1", "x", {})
    assert rows(herald, wh) == []
    r = herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"enabled": True, "rotate_secret": True})
    assert r.status_code == 200
    fresh = r.json()["secret"]
    assert fresh.startswith("whsec_") and fresh != wh["secret"]
    (row,) = herald.sqlite(f"SELECT secret, old_secret, old_secret_until_ms FROM webhook_endpoints "
                           f"WHERE id = '{wh['id']}'")
    assert row["secret"] == fresh and row["old_secret"] == wh["secret"]
    assert row["old_secret_until_ms"] > time.time() * 1000 + 3600 * 1000
    r = herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"events": ["a.*"], "url": "ftp://x"})
    assert r.status_code == 400
    assert herald.api("GET", f"/api/webhooks/{wh['id']}").json()["events"] == ["*"]
    herald.publish("race:1", "x", {})
    herald.publish("race:1", "y", {})
    assert len(rows(herald, wh)) == 2
    (d,) = deliveries(herald, wh, limit=1)
    assert d["event"] == "y"
    assert [x["event"] for x in deliveries(herald, wh, before=d["id"])] == ["x"]
    assert herald.api("GET", f"/api/webhooks/{wh['id']}/deliveries?status=lost").status_code == 400
    herald.api("PATCH", f"/api/webhooks/{wh['id']}", {"enabled": False})
    r = herald.api("POST", f"/api/webhooks/{wh['id']}/deliveries/{d['id']}/retry")
    assert r.status_code == 409 and "disabled" in r.json()["error"]["message"]
    assert herald.api("DELETE", f"/api/webhooks/{wh['id']}").status_code == 200
    assert herald.api("GET", f"/api/webhooks/{wh['id']}").status_code == 404
    assert herald.api("DELETE", f"/api/webhooks/{wh['id']}").status_code == 404
    assert rows(herald, wh) == []
    herald.publish("race:1", "z", {})
    assert herald.sqlite("SELECT count(*) AS n FROM webhook_deliveries")[0]["n"] == 0


def test_test_event_ignores_the_filter(herald):
    wh = add(herald, events=["never.*"])
    r = herald.api("POST", f"/api/webhooks/{wh['id']}/test")
    assert r.status_code == 202, r.text
    d = r.json()
    assert d["event"] == "webhook.test" and d["room"] is None
    (row,) = rows(herald, wh)
    body = json.loads(row["body"])
    assert body["type"] == "webhook.test" and body["room"] is None and body["seq"] is None
    stats = herald.api("GET", "/api/stats").json()["webhooks"]
    assert stats["endpoints"] == 1 and stats["created"] == 1
    metrics = herald.api("GET", "/metrics").text
    assert "herald_webhook_endpoints 1\n" in metrics
    assert "herald_webhook_deliveries_created_total 1\n" in metrics


def test_every_acknowledged_message_has_its_delivery_after_kill_9(herald):
    wh = add(herald, events=["*"], rooms=["race:*"])
    session = herald.api_session()
    acked = []
    for i in range(200):
        r = session.post(herald.admin_url("/api/publish"),
                         json={"room": f"race:{i % 7}", "event": "e", "data": {"i": i}}, timeout=10)
        assert r.status_code == 200
        acked.append((f"race:{i % 7}", r.json()["seq"]))
    herald.kill_all()
    herald.start()
    got = {(d["room"], d["seq"]) for d in rows(herald, wh)}
    assert got == set(acked)
    assert len(rows(herald, wh)) == 200
    assert herald.api("GET", "/api/webhooks").json()["webhooks"][0]["id"] == wh["id"]


def test_heraldctl_webhooks(herald):
    def ctl(*args, ok=True):
        p = subprocess.run([HERALDCTL, "-c", herald.conf, "webhooks", *args],
                           capture_output=True, text=True, timeout=30)
        assert (p.returncode == 0) == ok, (args, p.stdout, p.stderr)
        return json.loads(p.stdout) if ok else p.stderr

    wh = ctl("add", CLOSED, "--events", "order.*, race.*", "--rooms", "race:*",
             "--max-attempts", "4")
    assert wh["events"] == ["order.*", "race.*"] and wh["rooms"] == ["race:*"]
    assert wh["max_attempts"] == 4 and wh["secret"].startswith("whsec_")
    assert [w["id"] for w in ctl("list")["webhooks"]] == [wh["id"]]
    assert ctl("show", wh["id"])["id"] == wh["id"]
    assert ctl("disable", wh["id"])["enabled"] is False
    assert ctl("enable", wh["id"])["enabled"] is True
    assert ctl("rotate", wh["id"])["secret"] != wh["secret"]
    d = ctl("test", wh["id"])
    assert d["event"] == "webhook.test"
    assert [x["id"] for x in ctl("deliveries", wh["id"], "--limit", "5")["deliveries"]] == [d["id"]]
    assert "not_found" in ctl("retry", wh["id"], "msg_999999", ok=False)
    assert "needs" in ctl("retry", wh["id"], ok=False)
    assert ctl("rm", wh["id"])["deleted"] is True
    assert "not_found" in ctl("show", wh["id"], ok=False)
