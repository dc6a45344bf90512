"""Notifications (SPEC §6, §9): stored per user with a read flag, delivered as
event `notification` in user:{id}, listed and marked read over the API and
over WebSocket, and counted in the unread of welcome and authenticated."""
import json

import pytest

from conftest import TS_RE, make_token


def notify(h, expect=200, **body):
    r = h.api("POST", "/api/notifications", body)
    assert r.status_code == expect, r.text
    return r.json()


def listing(h, user, q=""):
    r = h.api("GET", f"/api/users/{user}/notifications{q}")
    assert r.status_code == 200, r.text
    return r.json()


def test_notify_one_user_stored_and_delivered(herald):
    alice = herald.client(token=make_token("alice"))
    alice.expect("subscribed", room="user:alice")
    bob = herald.client(token=make_token("bob"))
    bob.expect("subscribed", room="user:bob")
    body = notify(herald, user="alice", type="order.shipped", title="Shipped",
                  message="Your order 42 is on its way", data={"order": 42, "items": [1, 2]},
                  action_url="https://shop.example/orders/42")
    assert body["count"] == 1
    [n] = body["notifications"]
    assert n["user"] == "alice" and isinstance(n["id"], int) and isinstance(n["seq"], int)
    ev = alice.wait_events("user:alice", 1)[0]
    assert ev["event"] == "notification" and ev["seq"] == n["seq"]
    d = ev["data"]
    assert d["id"] == n["id"] and d["user"] == "alice" and d["type"] == "order.shipped"
    assert d["title"] == "Shipped" and d["message"] == "Your order 42 is on its way"
    assert d["data"] == {"order": 42, "items": [1, 2]}
    assert d["action_url"] == "https://shop.example/orders/42"
    assert d["read"] is False and TS_RE.match(d["created_at"])
    rows = herald.sqlite(f"SELECT * FROM notifications WHERE id = {n['id']}")
    assert len(rows) == 1
    row = rows[0]
    assert (row["user"], row["type"], row["title"], row["message"], row["action_url"], row["seq"]) == \
        ("alice", "order.shipped", "Shipped", "Your order 42 is on its way",
         "https://shop.example/orders/42", n["seq"])
    assert json.loads(row["data"]) == {"order": 42, "items": [1, 2]}
    assert row["read_at"] is None and TS_RE.match(row["created_at"])
    # it is also history of user:alice
    hist = herald.api("GET", "/api/rooms/user:alice/history").json()["messages"]
    assert [(m["seq"], m["event"], m["data"]["id"]) for m in hist] == [(n["seq"], "notification", n["id"])]
    # nobody else got it
    bob.drain(0.2)
    assert bob.events() == []
    alice.close()
    bob.close()


def test_notify_minimal_fields(herald):
    body = notify(herald, user="carol", type="ping")
    nid = body["notifications"][0]["id"]
    [n] = listing(herald, "carol")["notifications"]
    assert n["id"] == nid and n["type"] == "ping"
    assert n["title"] is None and n["message"] is None and n["data"] is None and n["action_url"] is None
    assert n["read"] is False and n["read_at"] is None


def test_notify_thousand_users_in_one_request(herald):
    users = [f"u{i}" for i in range(1000)]
    watch = {u: herald.client(token=make_token(u)) for u in ("u0", "u500", "u999")}
    for u, c in watch.items():
        c.expect("subscribed", room=f"user:{u}")
    body = notify(herald, users=users, type="promo", title="Sale", data={"pct": 20})
    assert body["count"] == 1000
    ns = body["notifications"]
    assert [n["user"] for n in ns] == users
    assert len({n["id"] for n in ns}) == 1000
    by_user = {n["user"]: n for n in ns}
    rows = herald.sqlite("SELECT user, count(*) AS n, min(id) AS id FROM notifications "
                         "WHERE type = 'promo' GROUP BY user")
    assert len(rows) == 1000
    assert all(r["n"] == 1 and r["id"] == by_user[r["user"]]["id"] for r in rows)
    for u, c in watch.items():
        ev = c.wait_events(f"user:{u}", 1)[0]
        assert ev["event"] == "notification" and ev["data"]["id"] == by_user[u]["id"]
        assert ev["seq"] == by_user[u]["seq"] and ev["data"]["data"] == {"pct": 20}
        c.close()
    assert listing(herald, "u321")["unread"] == 1


@pytest.mark.parametrize("body", [
    {"type": "t"},                                       # nobody
    {"user": "alice"},                                   # no type
    {"user": "alice", "type": ""},
    {"users": [], "type": "t"},
    {"users": ["a", 5], "type": "t"},
    {"users": ["a", ""], "type": "t"},
    {"user": "alice", "type": "t", "title": 5},
    {"user": "alice", "type": "t", "message": {"x": 1}},
    {"user": "alice", "type": "t", "action_url": ["u"]},
])
def test_notify_validation(shared_herald, body):
    herald = shared_herald
    stored = herald.sqlite("SELECT count(*) AS n FROM notifications")[0]["n"]
    r = herald.api("POST", "/api/notifications", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert herald.sqlite("SELECT count(*) AS n FROM notifications")[0]["n"] == stored


@pytest.mark.parametrize("users", [["bad user"], ["ok", "no/slash"], ["x" * 200], ["x" * 196]])
def test_notify_user_that_cannot_have_a_room_is_400(herald, users):
    """A user id that makes no valid room name user:{id} is the caller's
    error: 400, not 503 (which tells the caller to retry)."""
    r = herald.api("POST", "/api/notifications", {"users": users, "type": "t"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert herald.sqlite("SELECT count(*) AS n FROM notifications")[0]["n"] == 0
    # the hub is still fine
    assert notify(herald, user="ok", type="t")["count"] == 1


def make_five(h, user):
    ids = [notify(h, user=user, type="t", title=f"n{i}")["notifications"][0]["id"] for i in range(5)]
    assert ids == sorted(ids)
    return ids


def test_list_filters_and_pagination(herald):
    ids = make_five(herald, "carol")
    notify(herald, user="dave", type="t")                 # someone else's
    r = herald.api("POST", "/api/users/carol/notifications/read", {"ids": [ids[1], ids[3]]})
    assert r.status_code == 200 and r.json() == {"count": 2, "unread": 3}
    full = listing(herald, "carol")
    assert full["user"] == "carol" and full["unread"] == 3
    assert [n["id"] for n in full["notifications"]] == ids[::-1]        # newest first
    assert [n["title"] for n in full["notifications"]] == ["n4", "n3", "n2", "n1", "n0"]
    for n in full["notifications"]:
        read = n["id"] in (ids[1], ids[3])
        assert n["read"] is read and (n["read_at"] is not None) is read
        assert n["user"] == "carol"
        if read:
            assert TS_RE.match(n["read_at"])
    unread = listing(herald, "carol", "?unread=true")["notifications"]
    assert [n["id"] for n in unread] == [ids[4], ids[2], ids[0]]
    assert [n["id"] for n in listing(herald, "carol", "?limit=2")["notifications"]] == [ids[4], ids[3]]
    assert [n["id"] for n in listing(herald, "carol", f"?before={ids[3]}")["notifications"]] == \
        [ids[2], ids[1], ids[0]]
    assert [n["id"] for n in listing(herald, "carol", f"?unread=true&limit=1&before={ids[4]}")
            ["notifications"]] == [ids[2]]
    # paging through with limit and before visits everything once
    seen, before = [], ""
    while True:
        page = listing(herald, "carol", f"?limit=2{before}")["notifications"]
        if not page:
            break
        seen += [n["id"] for n in page]
        before = f"&before={page[-1]['id']}"
    assert seen == ids[::-1]
    assert listing(herald, "nobody") == {"user": "nobody", "unread": 0, "notifications": []}
    for q in ("?limit=-1", "?before=x"):
        r = herald.api("GET", f"/api/users/carol/notifications{q}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_mark_read_over_the_api(herald):
    ids = make_five(herald, "erin")
    other = notify(herald, user="frank", type="t")["notifications"][0]["id"]
    url = "/api/users/erin/notifications/read"
    r = herald.api("POST", url, {"ids": [ids[0], ids[2]]})
    assert r.status_code == 200 and r.json() == {"count": 2, "unread": 3}
    # already read, unknown, or someone else's: not counted
    r = herald.api("POST", url, {"ids": [ids[0], 999999, other]})
    assert r.json() == {"count": 0, "unread": 3}
    assert listing(herald, "frank")["unread"] == 1
    r = herald.api("POST", url, {"ids": []})
    assert r.json() == {"count": 0, "unread": 3}
    r = herald.api("POST", url, {})
    assert r.status_code == 200 and r.json() == {"count": 3, "unread": 0}
    assert listing(herald, "erin", "?unread=true")["notifications"] == []
    rows = herald.sqlite("SELECT count(*) AS n FROM notifications WHERE user = 'erin' AND read_at IS NULL")
    assert rows[0]["n"] == 0
    r = herald.api("POST", url, {"ids": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_mark_read_over_websocket(herald):
    ids = make_five(herald, "gina")
    c = herald.client(token=make_token("gina"))
    assert c.welcome["unread"] == 5
    c.send({"type": "read", "id": "rd1", "ids": [ids[0], ids[1]]})
    r = c.expect(id="rd1")
    assert r == {"type": "read", "id": "rd1", "count": 2}
    c.send({"type": "read", "id": 2, "ids": [ids[0]]})
    assert c.expect(id=2) == {"type": "read", "id": 2, "count": 0}
    assert listing(herald, "gina")["unread"] == 3
    r = c.call("read", all=True)
    assert r["type"] == "read" and r["count"] == 3
    assert listing(herald, "gina")["unread"] == 0
    r = c.call("read")
    assert r["type"] == "error" and r["code"] == "bad_request"
    c.close()
    anon = herald.client()
    r = anon.call("read", all=True)
    assert r["type"] == "error" and r["code"] == "auth_required"
    anon.close()


def test_read_cannot_touch_another_users_notifications(herald):
    other = notify(herald, user="hank", type="t")["notifications"][0]["id"]
    c = herald.client(token=make_token("ivy"))
    assert c.call("read", ids=[other])["count"] == 0
    assert listing(herald, "hank")["unread"] == 1
    c.close()


def test_welcome_unread_reflects_the_count(herald):
    c = herald.client(token=make_token("jo"))
    assert c.welcome["unread"] == 0
    c.close()
    ids = [notify(herald, user="jo", type="t")["notifications"][0]["id"] for _ in range(3)]
    c = herald.client(token=make_token("jo"))
    assert c.welcome["unread"] == 3
    c.close()
    herald.api("POST", "/api/users/jo/notifications/read", {"ids": [ids[1]]})
    c = herald.client(bearer=make_token("jo"))
    assert c.welcome["unread"] == 2
    assert c.call("read", all=True)["count"] == 2
    c.close()
    c = herald.client(token=make_token("jo"))
    assert c.welcome["unread"] == 0
    c.close()
    # anonymous connections have no notifications
    assert herald.client().welcome["unread"] == 0


def test_auth_message_carries_the_unread_count(herald):
    notify(herald, user="kim", type="t")
    notify(herald, user="kim", type="t")
    c = herald.client()
    assert c.welcome["unread"] == 0            # anonymous until the auth message
    reply = c.call("auth", token=make_token("kim"))
    assert reply["type"] == "authenticated" and reply["unread"] == 2
    assert c.call("read", all=True)["count"] == 2
    # a token refresh answers the count as it is now
    assert c.call("auth", token=make_token("kim"))["unread"] == 0
    c.close()


def test_notifications_reach_every_device_of_the_user(herald):
    devices = [herald.client(token=make_token("kim")) for _ in range(4)]
    for d in devices:
        d.expect("subscribed", room="user:kim")
    n = notify(herald, user="kim", type="t", title="all devices")["notifications"][0]
    for d in devices:
        ev = d.wait_events("user:kim", 1)[0]
        assert ev["data"]["id"] == n["id"] and ev["data"]["title"] == "all devices"
        d.close()
