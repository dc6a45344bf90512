"""RFC 6455 behaviour of the WebSocket core, the HTTP/1.1 front end and the
health probes, driven with raw sockets and the websockets library."""
import asyncio
import json
import os
import socket
import struct
import time

import pytest
import requests
import websockets

from conftest import API_KEY
from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Buffered, RawWS,
                   handshake_request, read_http_response)


def http_raw(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_http_response(s, timeout)


# ---- handshake ---------------------------------------------------------------

def test_handshake_without_key_is_400(herald):
    req, _ = handshake_request(herald.port, "/echo", key="")
    status, _, body, _ = http_raw(herald.port, req)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_handshake_wrong_version_is_426_with_supported_version(herald):
    req, _ = handshake_request(herald.port, "/echo", version="8")
    status, headers, body, _ = http_raw(herald.port, req)
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


def test_plain_get_on_ws_endpoint_is_400(herald):
    status, _, body, _ = http_raw(herald.port, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400


def test_subprotocol_echoed_only_when_offered(herald):
    ws = RawWS(herald.port, "/ws", headers={"Sec-WebSocket-Protocol": "chat, herald.v1"})
    assert ws.headers.get("sec-websocket-protocol") == "herald.v1"
    ws.close()
    ws = RawWS(herald.port, "/ws")
    assert "sec-websocket-protocol" not in ws.headers
    ws.close()


def test_origin_allow_list(herald_factory):
    h = herald_factory(extra="allowed_origins = https://app.example, https://admin.example").start()
    req, _ = handshake_request(h.port, "/echo", extra={"Origin": "https://evil.example"})
    status, _, body, _ = http_raw(h.port, req)
    assert status == 403
    assert json.loads(body)["error"]["code"] == "forbidden"
    ws = RawWS(h.port, "/echo", headers={"Origin": "https://admin.example"})
    ws.send_text("hi")
    assert ws.recv_message() == (OP_TEXT, b"hi")
    ws.close()


def test_echo_disabled_by_default(herald_factory):
    h = herald_factory(extra="echo = off")
    # the harness turns echo on; the later key wins
    h.start()
    req, _ = handshake_request(h.port, "/echo")
    status, _, _, _ = http_raw(h.port, req)
    assert status == 404


def test_ws_welcome_and_pings(herald):
    ws = RawWS(herald.port, "/ws")
    welcome = ws.recv_json()
    assert welcome["type"] == "welcome" and welcome["user"] is None
    assert welcome["heartbeat"] == 25
    ws.send(OP_PING, b"abc")
    fin, op, payload = ws.recv_frame()
    if op == OP_TEXT:                     # global's subscribed, auto-joined, may come first
        assert json.loads(payload)["type"] == "subscribed"
        fin, op, payload = ws.recv_frame()
    assert (op, payload) == (OP_PONG, b"abc")
    ws.send_json({"type": "ping", "id": 7})
    msg = ws.recv_json()
    if msg["type"] == "subscribed":
        msg = ws.recv_json()
    assert msg["type"] == "pong" and msg["id"] == 7 and msg["ts"].endswith("Z")
    ws.close()


# ---- echo --------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536])
def test_echo_text_and_binary_sizes(herald, size):
    ws = RawWS(herald.port, "/echo")
    text = ("é" * (size // 2) + "a" * (size % 2)).encode()
    assert len(text) == size
    ws.send(OP_TEXT, text)
    assert ws.recv_message(timeout=10) == (OP_TEXT, text)
    blob = os.urandom(size)
    ws.send(OP_BINARY, blob)
    assert ws.recv_message(timeout=10) == (OP_BINARY, blob)
    ws.close()


def test_message_over_limit_is_1009(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_BINARY, b"x" * 65537)
    assert ws.expect_close() == 1009


def test_fragmented_over_limit_is_1009(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_BINARY, b"x" * 40000, fin=False)
    ws.send(OP_CONT, b"y" * 40000, fin=True)
    assert ws.expect_close() == 1009


def test_fragmented_message_with_interleaved_pings(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_TEXT, "Hello, ", fin=False)
    ws.send(OP_PING, b"p1")
    ws.send(OP_CONT, "wörld", fin=False)
    ws.send(OP_PING, b"p2")
    ws.send(OP_CONT, "!", fin=True)
    seen = []
    while True:
        fin, op, payload = ws.recv_frame()
        seen.append((op, payload))
        if op == OP_TEXT:
            break
    assert (OP_PONG, b"p1") in seen and (OP_PONG, b"p2") in seen
    assert seen[-1] == (OP_TEXT, "Hello, wörld!".encode())
    ws.close()


def test_echo_with_library_client(herald):
    async def run():
        async with websockets.connect(herald.ws_url("/echo"), max_size=None) as ws:
            for msg in ["", "x", "ü" * 1000, b"\x00\xff" * 5000]:
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 5) == msg
    asyncio.run(run())


# ---- protocol errors ---------------------------------------------------------

MALFORMED = [
    ("unmasked frame", lambda: RawWS.frame(OP_TEXT, b"hi", mask=False), 1002),
    ("rsv1 set", lambda: RawWS.frame(OP_TEXT, b"hi", rsv=4), 1002),
    ("rsv3 set", lambda: RawWS.frame(OP_TEXT, b"hi", rsv=1), 1002),
    ("reserved opcode 3", lambda: RawWS.frame(3, b"hi"), 1002),
    ("reserved opcode 0xB", lambda: RawWS.frame(0xB, b""), 1002),
    ("ping over 125 bytes", lambda: RawWS.frame(OP_PING, b"p" * 126), 1002),
    ("fragmented ping", lambda: RawWS.frame(OP_PING, b"p", fin=False), 1002),
    ("continuation without start", lambda: RawWS.frame(OP_CONT, b"x"), 1002),
    ("text inside fragmented message",
     lambda: RawWS.frame(OP_TEXT, b"a", fin=False) + RawWS.frame(OP_TEXT, b"b"), 1002),
    ("invalid utf-8", lambda: RawWS.frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"), 1007),
    ("overlong encoding", lambda: RawWS.frame(OP_TEXT, b"\xc0\xaf"), 1007),
    ("beyond U+10FFFF", lambda: RawWS.frame(OP_TEXT, b"\xf4\x90\x80\x80"), 1007),
    ("truncated code point at end", lambda: RawWS.frame(OP_TEXT, b"abc\xe2\x82"), 1007),
    ("close with 1 byte", lambda: RawWS.frame(OP_CLOSE, b"\x03"), 1002),
    ("close code 1005", lambda: RawWS.frame(OP_CLOSE, struct.pack("!H", 1005)), 1002),
    ("close code 999", lambda: RawWS.frame(OP_CLOSE, struct.pack("!H", 999)), 1002),
    ("close code 1004", lambda: RawWS.frame(OP_CLOSE, struct.pack("!H", 1004)), 1002),
    ("close code 5000", lambda: RawWS.frame(OP_CLOSE, struct.pack("!H", 5000)), 1002),
    ("close reason not utf-8", lambda: RawWS.frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
]


@pytest.mark.parametrize("name,make,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames(herald, name, make, code):
    ws = RawWS(herald.port, "/echo")
    ws.send_raw(make())
    assert ws.expect_close() == code
    assert ws.tcp_closed()


def test_64bit_length_with_high_bit_is_1002(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + os.urandom(4))
    assert ws.expect_close() == 1002


def test_invalid_utf8_fails_fast_across_fragments(herald):
    """The first fragment is already invalid: the server must not wait for FIN."""
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_TEXT, b"ok\xed\xa0\x80", fin=False)
    assert ws.expect_close(timeout=3) == 1007


def test_code_point_split_across_fragments_is_valid(herald):
    ws = RawWS(herald.port, "/echo")
    euro = "€".encode()
    ws.send(OP_TEXT, b"a" + euro[:1], fin=False)
    ws.send(OP_CONT, euro[1:2], fin=False)
    ws.send(OP_CONT, euro[2:] + b"b", fin=True)
    assert ws.recv_message() == (OP_TEXT, b"a" + euro + b"b")
    ws.close()


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_close_handshake_echoes_code(herald, code):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_CLOSE, struct.pack("!H", code) + b"bye")
    assert ws.expect_close() == code
    assert ws.tcp_closed()


def test_empty_close_answered_with_empty_close(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_CLOSE, b"")
    assert ws.expect_close() == 1005   # no status in the reply either
    assert ws.tcp_closed()


# ---- HTTP --------------------------------------------------------------------

def test_http_errors(herald):
    status, _, body, _ = http_raw(herald.admin_port, b"GARBAGE\r\n\r\n")
    assert status == 400 and json.loads(body)["error"]["code"]
    status, _, _, _ = http_raw(herald.admin_port, b"GET /health HTTP/2.0\r\n\r\n")
    assert status == 505
    big = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    status, _, _, _ = http_raw(herald.admin_port, big)
    assert status == 431
    many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    status, _, _, _ = http_raw(herald.admin_port, many)
    assert status == 431
    huge_body = b"POST /api/publish HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"
    status, _, _, _ = http_raw(herald.admin_port, huge_body)
    assert status == 413
    status, _, body, _ = http_raw(herald.admin_port, b"GET /nope HTTP/1.1\r\n\r\n")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_http_pipelining_and_keep_alive(herald):
    with socket.create_connection(("127.0.0.1", herald.admin_port), timeout=5) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        rest = b""
        for _ in range(3):
            s2 = Buffered(s, rest)
            status, headers, body, rest = read_http_response(s2)
            assert status == 200 and json.loads(body)["status"] == "ok"
        s.sendall(b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
        status, headers, body, _ = read_http_response(Buffered(s, rest))
        assert status == 200 and headers.get("connection") == "close"


def test_pipelined_responses_keep_request_order(herald):
    """Requests that wait on the hub (publish, stats) and requests answered at
    once (health) are pipelined on one connection: the responses come back in
    request order, the publishes in sequence, more than the pipeline depth."""
    def publish(i):
        body = json.dumps({"room": "market:pipe", "event": "e", "data": i}).encode()
        return (b"POST /api/publish HTTP/1.1\r\nAuthorization: Bearer " + API_KEY.encode() +
                b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    stats = b"GET /api/stats HTTP/1.1\r\nAuthorization: Bearer " + API_KEY.encode() + b"\r\n\r\n"
    health = b"GET /health/live HTTP/1.1\r\n\r\n"
    plan = []
    for i in range(40):
        plan.append(("publish", publish(i)) if i % 3 else
                    ("health", health) if i % 2 else ("stats", stats))
    with socket.create_connection(("127.0.0.1", herald.admin_port), timeout=10) as s:
        s.sendall(b"".join(req for _, req in plan))
        rest, seqs = b"", []
        for kind, _ in plan:
            status, headers, body, rest = read_http_response(Buffered(s, rest))
            assert status == 200, body
            reply = json.loads(body)
            if kind == "publish":
                seqs.append(reply["seq"])
            elif kind == "health":
                assert reply == {"status": "ok"}
            else:
                assert "connections" in reply
            assert headers.get("connection") != "close"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_health_on_both_listeners(herald):
    for port in (herald.port, herald.admin_port):
        r = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok" and body["hub"] == "up" and body["db"] == "writable"
        assert isinstance(body["connections"], int) and body["uptime"] >= 0
        assert requests.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200


def test_health_counts_connections_over_workers(herald):
    clients = [RawWS(herald.port, "/ws") for _ in range(20)]
    deadline = time.time() + 5
    n = -1
    while time.time() < deadline:
        n = requests.get(herald.admin_url("/health"), timeout=5).json()["connections"]
        if n == 20:
            break
        time.sleep(0.05)
    assert n == 20
    for c in clients:
        c.close()


def test_slowloris_is_cut_off(herald_factory):
    h = herald_factory(extra="handshake_timeout = 1").start()
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    start = time.time()
    closed = False
    try:
        for ch in b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ":
            s.sendall(bytes([ch]))
            time.sleep(0.1)
            if time.time() - start > 4:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        s.settimeout(3)
        try:
            closed = s.recv(100) == b""
        except ConnectionResetError:
            closed = True
    s.close()
    assert closed
    # the server is still there for everyone else
    assert requests.get(h.admin_url("/health/live"), timeout=5).status_code == 200
