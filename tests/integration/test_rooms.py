"""The client protocol on /ws (SPEC §3, §4): welcome, the three ways to
authenticate, token checks and expiry, room permissions per namespace, room
names, subscriptions, request ids, client publishing, ping and limits."""
import base64
import hashlib
import hmac
import json
import time

import pytest

from conftest import (EPOCH_RE, JWT_SECRET, TS_RE, Client, HandshakeRefused, b64url,
                      make_token, upgrade_refusal, wait_until)


def forged(header, payload, secret=JWT_SECRET, signature=None):
    """A JWT with the given header and payload dicts, HMAC-signed with secret
    unless signature (text) is given."""
    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(payload).encode())
    if signature is None:
        signature = b64url(hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{signature}"


def tampered_token():
    """alice's valid token with its payload changed to bob, signature kept."""
    good = make_token("alice")
    h, p, s = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    payload["sub"] = "bob"
    return f"{h}.{b64url(json.dumps(payload).encode())}.{s}"


def now():
    return int(time.time())


BAD_TOKENS = {
    "tampered": (tampered_token, "auth_failed"),
    "wrong_key": (lambda: make_token("alice", secret="not-the-secret"), "auth_failed"),
    "alg_none_unsigned": (lambda: forged({"alg": "none", "typ": "JWT"},
                                         {"sub": "alice", "exp": now() + 3600}, signature=""),
                          "auth_failed"),
    "alg_none_signed": (lambda: forged({"alg": "none", "typ": "JWT"},
                                       {"sub": "alice", "exp": now() + 3600}), "auth_failed"),
    "alg_hs512": (lambda: forged({"alg": "HS512", "typ": "JWT"},
                                 {"sub": "alice", "exp": now() + 3600}), "auth_failed"),
    "garbage": (lambda: "not.a.jwt", "auth_failed"),
    "not_yet_valid": (lambda: make_token("alice", nbf=now() + 3600), "auth_failed"),
    "exp_not_a_number": (lambda: make_token("alice", exp="tomorrow"), "auth_failed"),
    "expired": (lambda: make_token("alice", ttl=-3600), "token_expired"),
}


# ---- welcome --------------------------------------------------------------------------

def test_welcome_anonymous(herald):
    c = herald.client()
    w = c.welcome
    assert c.messages[0]["type"] == "welcome"
    assert isinstance(w["client_id"], str) and w["client_id"]
    assert w["user"] is None
    assert w["rooms"] == ["global"]
    assert w["heartbeat"] == 25
    assert w["unread"] == 0
    s = c.expect("subscribed", room="global")
    assert s["recovered"] is True and s["replayed"] == 0 and s["seq"] == 0
    assert s["epoch"] == ""              # no message yet: no epoch yet
    c.close()


def test_welcome_authenticated_via_query_token(herald):
    c = herald.client(token=make_token("alice"))
    w = c.welcome
    assert w["user"] == "alice"
    assert sorted(w["rooms"]) == ["global", "user:alice"]
    assert w["unread"] == 0 and w["heartbeat"] == 25
    c.expect("subscribed", room="user:alice")
    c.expect("subscribed", room="global")
    # the auto-joined rooms are live: a publish to user:alice arrives
    r = herald.publish("user:alice", "hello", {"n": 1})
    assert r.status_code == 200
    ev = c.wait_events("user:alice", 1)[0]
    assert ev["data"] == {"n": 1} and ev["event"] == "hello" and ev["seq"] == r.json()["seq"]
    c.close()


def test_welcome_authenticated_via_bearer_header(herald):
    c = herald.client(bearer=make_token("bob"))
    assert c.welcome["user"] == "bob"
    assert sorted(c.welcome["rooms"]) == ["global", "user:bob"]
    c.expect("subscribed", room="user:bob")
    c.close()


def test_client_ids_are_distinct(herald):
    clients = [herald.client() for _ in range(6)]
    ids = [c.welcome["client_id"] for c in clients]
    assert len(set(ids)) == 6
    for c in clients:
        c.close()


def test_welcome_is_the_first_message_on_every_connection(herald):
    """SPEC §3: welcome comes right after the upgrade, before anything else,
    also when the auto-joined rooms are already known to the worker."""
    clients = []
    for i in range(8):
        clients.append(herald.client(token=make_token(f"u{i % 2}")))
    firsts = [c.messages[0]["type"] for c in clients]
    for c in clients:
        c.close()
    assert firsts == ["welcome"] * 8


# ---- authentication -----------------------------------------------------------------

def test_auth_message_authenticates_an_anonymous_connection(herald):
    c = herald.client()
    assert c.welcome["user"] is None
    c.send({"type": "auth", "id": "a1", "token": make_token("alice")})
    r = c.expect(id="a1")
    assert r["type"] == "authenticated", r
    assert r["user"] == "alice"
    assert sorted(r["rooms"]) == ["global", "user:alice"]
    c.expect("subscribed", room="user:alice")
    assert herald.publish("user:alice", "x", {"k": "v"}).status_code == 200
    assert c.wait_events("user:alice", 1)[0]["data"] == {"k": "v"}
    c.call("subscriptions")  # still fine
    c.close()


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_token_in_url_is_401(shared_herald, name):
    herald = shared_herald
    make, code = BAD_TOKENS[name]
    status, body = upgrade_refusal(herald.port, "/ws?token=" + make())
    assert status == 401
    assert body["error"]["code"] == code


@pytest.mark.parametrize("name", ["tampered", "wrong_key", "alg_none_unsigned", "expired"])
def test_bad_token_in_header_is_401(shared_herald, name):
    herald = shared_herald
    make, code = BAD_TOKENS[name]
    status, body = upgrade_refusal(herald.port, headers={"Authorization": "Bearer " + make()})
    assert status == 401
    assert body["error"]["code"] == code


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_token_in_auth_message(shared_herald, name):
    herald = shared_herald
    make, code = BAD_TOKENS[name]
    c = herald.client()
    c.send({"type": "auth", "id": 7, "token": make()})
    r = c.expect(id=7)
    assert r["type"] == "error" and r["code"] == code, r
    # still anonymous and still served
    assert c.call("subscriptions")["rooms"] == ["global"]
    c.send({"type": "auth", "id": 8, "token": make_token("alice")})
    assert c.expect(id=8)["type"] == "authenticated"
    c.close()


def test_issuer_and_audience_checked_when_configured(herald_factory):
    h = herald_factory(extra="jwt_issuer = https://auth.example\njwt_audience = herald").start()
    iss = "https://auth.example"
    for claims in ({}, {"aud": "herald"}, {"iss": iss}, {"iss": "https://evil.example", "aud": "herald"},
                   {"iss": iss, "aud": "other"}, {"iss": iss, "aud": ["a", "b"]}):
        status, body = upgrade_refusal(h.port, "/ws?token=" + make_token("alice", **claims))
        assert status == 401 and body["error"]["code"] == "auth_failed", claims
    for aud in ("herald", ["other", "herald"]):
        c = h.client(token=make_token("alice", iss=iss, aud=aud))
        assert c.welcome["user"] == "alice"
        c.close()


def eddsa_token(key, sub, ttl=3600, alg="EdDSA", **claims):
    now_ = int(time.time())
    payload = {"sub": sub, "iat": now_, "exp": now_ + ttl, **claims}
    h = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64url(json.dumps(payload).encode())
    return f"{h}.{p}.{b64url(key.sign(f'{h}.{p}'.encode()))}"


def test_eddsa_tokens(herald_factory):
    ed = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization
    key = ed.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = herald_factory(extra="jwt_public_key = " + base64.b64encode(pub).decode()).start()
    c = h.client(token=eddsa_token(key, "eve", roles=["ops"]))
    assert c.welcome["user"] == "eve"
    assert c.subscribe("ops:x")["room"] == "ops:x"        # claims of an EdDSA token are used
    c.close()
    c = h.client(bearer=eddsa_token(key, "eve"))
    assert c.welcome["user"] == "eve"
    c.close()
    # HS256 keeps working next to it
    c = h.client(token=make_token("hal"))
    assert c.welcome["user"] == "hal"
    r = c.call("auth", token=eddsa_token(key, "other"))
    assert r["type"] == "error" and r["code"] == "auth_failed"
    c.close()
    other = ed.Ed25519PrivateKey.generate()
    for token, code in ((eddsa_token(other, "eve"), "auth_failed"),
                        (eddsa_token(key, "eve", ttl=-3600), "token_expired"),
                        (eddsa_token(key, "eve", alg="none"), "auth_failed"),
                        (eddsa_token(key, "eve", alg="HS256"), "auth_failed")):
        status, body = upgrade_refusal(h.port, "/ws?token=" + token)
        assert status == 401 and body["error"]["code"] == code
        c = h.client()
        r = c.call("auth", token=token)
        assert r["type"] == "error" and r["code"] == code
        c.close()


def test_auth_message_without_token_is_bad_request(herald):
    c = herald.client()
    r = c.call("auth")
    assert r["type"] == "error" and r["code"] == "bad_request"
    c.close()


def test_connection_cannot_change_its_user(herald):
    c = herald.client(token=make_token("alice"))
    r = c.call("auth", token=make_token("bob"))
    assert r["type"] == "error" and r["code"] == "auth_failed"
    assert c.call("subscriptions")["rooms"].count("user:bob") == 0
    c.close()


# ---- permissions -----------------------------------------------------------------------

def test_user_room_is_only_for_its_owner(herald):
    c = herald.client(token=make_token("alice"))
    r = c.call("subscribe", room="user:bob")
    assert r["type"] == "error" and r["code"] == "forbidden", r
    anon = herald.client()
    r = anon.call("subscribe", room="user:alice")
    assert r["type"] == "error" and r["code"] == "forbidden", r
    # a publish to user:bob does not reach alice
    herald.publish("user:bob", "secret", {"x": 1})
    herald.publish("user:alice", "mine", {"x": 2})
    c.wait_events("user:alice", 1)
    assert c.events("user:bob") == []
    c.close()
    anon.close()


def test_claim_rooms(herald):
    c = herald.client(token=make_token("alice", rooms=["market:1*"]))
    s = c.subscribe("market:17")
    assert s["room"] == "market:17"
    assert c.subscribe("market:1")["room"] == "market:1"
    r = c.call("subscribe", room="market:2")
    assert r["type"] == "error" and r["code"] == "forbidden"
    r = c.call("subscribe", room="market:21")
    assert r["type"] == "error" and r["code"] == "forbidden"
    # claims do not extend to other namespaces' rules
    r = c.call("subscribe", room="ops:1")
    assert r["type"] == "error" and r["code"] == "forbidden"
    c.close()
    for token in (make_token("bob"), None):
        other = herald.client(token=token)
        r = other.call("subscribe", room="market:17")
        assert r["type"] == "error" and r["code"] == "forbidden"
        other.close()


def test_role_rooms(herald):
    ops = herald.client(token=make_token("olga", roles=["dev", "ops"]))
    assert ops.subscribe("ops:alerts")["room"] == "ops:alerts"
    dev = herald.client(token=make_token("dan", roles=["dev"]))
    r = dev.call("subscribe", room="ops:alerts")
    assert r["type"] == "error" and r["code"] == "forbidden"
    anon = herald.client()
    r = anon.call("subscribe", room="ops:alerts")
    assert r["type"] == "error" and r["code"] == "forbidden"
    # role:ops may also publish there
    r = ops.call("publish", room="ops:alerts", event="page", data={"sev": 1})
    assert r["type"] == "published" and r["room"] == "ops:alerts" and r["seq"] == 1
    r = dev.call("publish", room="ops:alerts", event="page", data={})
    assert r["type"] == "error" and r["code"] == "forbidden"
    for c in (ops, dev, anon):
        c.close()


def test_chat_needs_authentication(herald):
    anon = herald.client()
    r = anon.call("subscribe", room="chat:lobby")
    assert r["type"] == "error" and r["code"] == "forbidden"
    alice = herald.client(token=make_token("alice"))
    assert alice.subscribe("chat:lobby")["recovered"] is True
    anon.close()
    alice.close()


@pytest.mark.parametrize("room", ["nope:1", "lobby", "Race:1"])
def test_unknown_namespace_is_denied(shared_herald, room):
    herald = shared_herald
    c = herald.client(token=make_token("alice", rooms=["*"], roles=["ops", "admin"]))
    r = c.call("subscribe", room=room)
    assert r["type"] == "error" and r["code"] == "forbidden", r
    assert room not in c.call("subscriptions")["rooms"]
    c.close()


@pytest.mark.parametrize("room", ["", "race:a b", "race:1/2", "race:é", "ra$ce:1", "race:" + "x" * 196,
                                  "race:1\n", 42, None, ["race:1"]])
def test_invalid_room_names_are_bad_request(shared_herald, room):
    herald = shared_herald
    c = herald.client()
    r = c.call("subscribe", room=room)
    assert r["type"] == "error" and r["code"] == "bad_request", r
    assert c.call("subscriptions")["rooms"] == ["global"]
    c.close()


def test_longest_valid_room_name(herald):
    c = herald.client()
    name = "race:" + "a" * 195                      # 200 bytes
    assert c.subscribe(name)["room"] == name
    r = herald.publish(name, "e", {"ok": True})
    assert r.status_code == 200
    assert c.wait_events(name, 1)[0]["data"] == {"ok": True}
    c.close()


def test_allowed_characters_in_room_names(herald):
    c = herald.client()
    name = "race:AZaz09_.:@-"
    assert c.subscribe(name)["room"] == name
    c.close()


# ---- subscriptions ------------------------------------------------------------------

def test_subscribe_and_subscriptions(herald):
    c = herald.client(token=make_token("alice"))
    c.expect("subscribed", room="global")
    s = c.subscribe("race:1")
    assert s == {"type": "subscribed", "id": s["id"], "room": "race:1", "seq": 0,
                 "epoch": "", "recovered": True, "replayed": 0}
    herald.publish("race:1", "e", {})
    assert EPOCH_RE.match(c.subscribe("race:1")["epoch"])
    c.subscribe("race:2")
    r = c.call("subscriptions")
    assert r["type"] == "subscriptions"
    assert sorted(r["rooms"]) == ["global", "race:1", "race:2", "user:alice"]
    c.close()


def test_subscribe_many_rooms_in_one_message(herald):
    c = herald.client()
    c.send({"type": "subscribe", "id": "m", "rooms": ["race:1", "race:2", "race:3"]})
    got = sorted(c.expect("subscribed", id="m")["room"] for _ in range(3))
    assert got == ["race:1", "race:2", "race:3"]
    assert sorted(c.call("subscriptions")["rooms"]) == ["global", "race:1", "race:2", "race:3"]
    c.close()


def test_subscribed_reports_the_rooms_current_seq(herald):
    for i in range(3):
        assert herald.publish("race:seq", "e", {"i": i}).status_code == 200
    c = herald.client()
    s = c.subscribe("race:seq")
    assert s["seq"] == 3 and s["recovered"] is True and s["replayed"] == 0
    # nothing of the past is sent without `since`
    r = herald.publish("race:seq", "e", {"i": 3})
    assert c.wait_events("race:seq", 1)[0]["seq"] == 4
    assert c.seqs("race:seq") == [4]
    assert r.json()["epoch"] == s["epoch"]
    c.close()


def test_unsubscribe(herald):
    c = herald.client()
    c.subscribe("race:1")
    c.subscribe("race:2")
    r = c.call("unsubscribe", room="race:1")
    assert r["type"] == "unsubscribed" and r["room"] == "race:1"
    assert sorted(c.call("subscriptions")["rooms"]) == ["global", "race:2"]
    # race:1 is published before race:2: had it been delivered it would come first
    assert herald.publish("race:1", "e", {"n": 1}).status_code == 200
    assert herald.publish("race:2", "e", {"n": 2}).status_code == 200
    c.wait_events("race:2", 1)
    assert c.events("race:1") == []
    c.close()


def test_unsubscribe_many_and_resubscribe(herald):
    c = herald.client()
    c.subscribe("race:1")
    c.subscribe("race:2")
    c.send({"type": "unsubscribe", "id": "u", "rooms": ["race:1", "race:2"]})
    assert sorted(c.expect("unsubscribed", id="u")["room"] for _ in range(2)) == ["race:1", "race:2"]
    assert c.call("subscriptions")["rooms"] == ["global"]
    c.subscribe("race:1")
    herald.publish("race:1", "e", {"again": True})
    assert c.wait_events("race:1", 1)[0]["data"] == {"again": True}
    c.close()


def test_subscribe_to_the_same_room_twice_delivers_once(herald):
    c = herald.client()
    c.subscribe("race:dup")
    c.subscribe("race:dup")
    assert c.call("subscriptions")["rooms"].count("race:dup") == 1
    for n in range(3):
        assert herald.publish("race:dup", "e", {"n": n}).status_code == 200
    assert c.wait_seq("race:dup", 3) == [1, 2, 3]
    c.close()


# ---- ids, malformed requests, ping -------------------------------------------------------

@pytest.mark.parametrize("rid", ["abc", 42, 0, -5, "", "x" * 100, 1.5])
def test_request_id_is_echoed(shared_herald, rid):
    herald = shared_herald
    c = herald.client()
    c.send({"type": "ping", "id": rid})
    assert c.expect("pong")["id"] == rid
    c.send({"type": "subscribe", "id": rid, "room": "race:1"})
    assert c.expect("subscribed", room="race:1")["id"] == rid
    c.send({"type": "subscriptions", "id": rid})
    assert c.expect("subscriptions")["id"] == rid
    c.send({"type": "unsubscribe", "id": rid, "room": "race:1"})
    assert c.expect("unsubscribed")["id"] == rid
    c.send({"type": "subscribe", "id": rid, "room": "user:nobody"})
    e = c.expect("error")
    assert e["id"] == rid and e["code"] == "forbidden"
    c.close()


def test_error_without_id_has_none(herald):
    c = herald.client()
    c.send({"type": "subscribe", "room": "user:nobody"})
    e = c.expect("error")
    assert e["code"] == "forbidden" and "id" not in e
    assert isinstance(e["message"], str)
    c.close()


@pytest.mark.parametrize("payload", ['{"type":"nope"}', '{"id":1}', "[1,2]", "not json", '"str"',
                                     '{"type":"subscribe"}', '{"type":"unsubscribe"}',
                                     '{"type":"resume"}', '{"type":"subscribe","room":"race:1",'
                                     '"since":{"seq":"x"}}', '{"type":"publish"}',
                                     '{"type":"ping","deep":' + "[" * 40 + "]" * 40 + "}",
                                     '{"type":"ping","type":"ping"}',
                                     '{"type":"subscribe","room":"race:1","since":{"seq":-1,"epoch":"x"}}',
                                     '{"type":"subscribe","room":"race:1","since":5}'])
def test_malformed_requests_are_bad_request(shared_herald, payload):
    herald = shared_herald
    c = herald.client()
    c.send(payload)
    e = c.expect("error")
    assert e["code"] == "bad_request", e
    # the connection stays usable
    assert c.call("ping")["type"] == "pong"
    c.close()


def test_ping_pong(herald):
    c = herald.client()
    before = time.time()
    r = c.call("ping")
    assert r["type"] == "pong"
    assert TS_RE.match(r["ts"]), r
    ts = time.mktime(time.strptime(r["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(ts - before) < 5
    c.close()


# ---- client publishing -------------------------------------------------------------------

def test_client_publish_in_chat(herald):
    alice = herald.client(token=make_token("alice"))
    bob = herald.client(token=make_token("bob"))
    bob.subscribe("chat:lobby")
    alice.subscribe("chat:lobby")
    data = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"a": {"b": "c"}}}
    r = alice.call("publish", room="chat:lobby", event="message", data=data)
    assert r["type"] == "published", r
    assert r["room"] == "chat:lobby" and r["seq"] == 1 and EPOCH_RE.match(r["epoch"])
    for c in (bob, alice):
        ev = c.wait_events("chat:lobby", 1)[0]
        assert ev["event"] == "message" and ev["data"] == data and ev["seq"] == 1
        assert ev["epoch"] == r["epoch"] and TS_RE.match(ev["ts"])
    r2 = bob.call("publish", room="chat:lobby", event="message", data={"text": "hi"})
    assert r2["seq"] == 2 and r2["epoch"] == r["epoch"]
    rows = herald.sqlite("SELECT m.seq, m.event, m.data FROM messages m JOIN rooms r ON r.id = m.room_id "
                         "WHERE r.name = 'chat:lobby' ORDER BY m.seq")
    assert [(x["seq"], x["event"], json.loads(x["data"])) for x in rows] == \
        [(1, "message", data), (2, "message", {"text": "hi"})]
    alice.close()
    bob.close()


def test_client_publish_forbidden_where_publish_is_api(herald):
    alice = herald.client(token=make_token("alice", roles=["ops"], rooms=["*"]))
    alice.subscribe("race:9")
    r = alice.call("publish", room="race:9", event="odds", data={"x": 1})
    assert r["type"] == "error" and r["code"] == "forbidden", r
    r = alice.call("publish", room="global", event="x", data={})
    assert r["type"] == "error" and r["code"] == "forbidden", r
    anon = herald.client()
    r = anon.call("publish", room="chat:lobby", event="message", data={})
    assert r["type"] == "error" and r["code"] == "forbidden", r
    # nothing was stored
    assert herald.sqlite("SELECT count(*) AS n FROM messages m JOIN rooms r ON r.id = m.room_id "
                         "WHERE r.name IN ('race:9', 'global', 'chat:lobby')")[0]["n"] == 0
    alice.close()
    anon.close()


def test_client_publish_validation(herald):
    alice = herald.client(token=make_token("alice"))
    for bad in ({"room": "chat:x"}, {"event": "e", "data": {}}, {"room": "chat:x", "event": ""},
                {"room": "chat:x", "event": "e" * 129, "data": {}}, {"room": "chat:a b", "event": "e"}):
        r = alice.call("publish", **bad)
        assert r["type"] == "error" and r["code"] == "bad_request", (bad, r)
    alice.close()


# ---- limits -----------------------------------------------------------------------------

def test_too_many_rooms(herald_factory):
    h = herald_factory(extra="max_rooms_per_connection = 3").start()
    c = h.client()                       # global
    c.subscribe("race:1")
    c.subscribe("race:2")
    r = c.call("subscribe", room="race:3")
    assert r["type"] == "error" and r["code"] == "too_many_rooms", r
    assert sorted(c.call("subscriptions")["rooms"]) == ["global", "race:1", "race:2"]
    # freeing a slot makes room again
    c.call("unsubscribe", room="race:1")
    assert c.subscribe("race:3")["room"] == "race:3"
    c.close()
    a = h.client(token=make_token("alice"))   # user:alice + global
    a.subscribe("race:1")
    r = a.call("subscribe", room="race:2")
    assert r["type"] == "error" and r["code"] == "too_many_rooms", r
    a.close()


def test_max_connections_per_user(herald_factory):
    h = herald_factory(extra="max_connections_per_user = 2").start()
    a1 = h.client(token=make_token("alice"))
    a2 = h.client(token=make_token("alice"))
    assert wait_until(lambda: len(h.api("GET", "/api/connections?user=alice").json()["connections"]) == 2, 5)
    a3 = h.client(token=make_token("alice"))
    assert a3.expect_close(5) == 1008
    bob = h.client(token=make_token("bob"))
    for c in (a1, a2, bob):
        assert c.call("ping")["type"] == "pong"
    a1.close()
    assert wait_until(lambda: len(h.api("GET", "/api/connections?user=alice").json()["connections"]) == 1, 5)
    a4 = h.client(token=make_token("alice"))
    a4.drain(0.3)
    assert not a4.closed and a4.call("ping")["type"] == "pong"
    for c in (a2, a4, bob):
        c.close()


def test_max_connections_per_ip(herald_factory):
    h = herald_factory(extra="max_connections_per_ip = 3").start()
    clients = [h.client() for _ in range(3)]
    assert wait_until(lambda: h.api("GET", "/api/stats").json()["connections"] == 3, 5)
    extra = h.client()
    assert extra.expect_close(5) == 1008
    for c in clients:
        assert c.call("ping")["type"] == "pong"
        c.close()


def test_anonymous_disallowed_closes_with_4001(herald_factory):
    h = herald_factory(extra="allow_anonymous = no\nauth_timeout = 1").start()
    c = h.client()
    assert c.welcome["user"] is None and c.welcome["rooms"] == []
    r = c.call("subscribe", room="race:1")
    assert r["type"] == "error" and r["code"] == "auth_required", r
    assert c.expect_close(timeout=5) == 4001
    assert c.events() == []


def test_anonymous_disallowed_auth_in_time_keeps_the_connection(herald_factory):
    h = herald_factory(extra="allow_anonymous = no\nauth_timeout = 1").start()
    c = h.client()
    r = c.call("auth", token=make_token("alice"))
    assert r["type"] == "authenticated" and r["user"] == "alice"
    assert sorted(r["rooms"]) == ["global", "user:alice"]
    c.drain(1.5)                              # past auth_timeout
    assert not c.closed
    assert c.call("ping")["type"] == "pong"
    assert c.subscribe("race:1")["room"] == "race:1"
    c.close()
    # a token in the URL needs no auth message
    t = h.client(token=make_token("bob"))
    assert t.welcome["user"] == "bob"
    t.drain(1.5)
    assert not t.closed and t.call("ping")["type"] == "pong"
    t.close()


def test_token_expiry_closes_with_4003(herald_factory):
    h = herald_factory(extra="jwt_leeway = 0\ntoken_grace = 1").start()
    exp = time.time() + 2
    c = h.client(token=make_token("alice", ttl=2))
    e = c.expect("error", timeout=6)
    got_at = time.time()
    assert e["code"] == "token_expired" and "id" not in e
    assert got_at >= int(exp) - 0.2          # not before the token ran out
    assert c.expect_close(timeout=5) == 4003


def test_token_refresh_keeps_the_connection(herald_factory):
    h = herald_factory(extra="jwt_leeway = 0\ntoken_grace = 1").start()
    token = make_token("alice", ttl=2)
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    c = h.client(token=token)
    c.subscribe("race:1")
    r = c.call("auth", token=make_token("alice", ttl=3600))
    assert r["type"] == "authenticated" and r["user"] == "alice"
    # past the old expiry and its grace period
    c.drain(max(exp + 1.5 - time.time(), 0))
    assert not c.closed
    assert [m for m in c.messages if m.get("code") == "token_expired"] == []
    assert c.call("ping")["type"] == "pong"
    h.publish("race:1", "e", {"still": "here"})
    assert c.wait_events("race:1", 1)[0]["data"] == {"still": "here"}
    c.close()


def test_refresh_after_token_expired_within_grace(herald_factory):
    h = herald_factory(extra="jwt_leeway = 0\ntoken_grace = 2").start()
    c = h.client(token=make_token("alice", ttl=1))
    assert c.expect("error", timeout=5)["code"] == "token_expired"
    r = c.call("auth", token=make_token("alice"))
    assert r["type"] == "authenticated"
    c.drain(2.5)
    assert not c.closed
    assert c.call("ping")["type"] == "pong"
    c.close()


def test_good_token_upgrades_bad_signature_is_refused(herald):
    # a good token is not refused: the helper's negative path
    with pytest.raises(AssertionError):
        upgrade_refusal(herald.port, "/ws?token=" + make_token("alice"))
    with pytest.raises(HandshakeRefused):
        Client(herald.port, token=make_token("alice", secret="other"))
