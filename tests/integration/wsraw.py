"""A raw RFC 6455 client over a plain socket, for tests that must send what a
well-behaved library never would (bad masks, reserved bits, split frames)."""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The server closed the connection; .code is its close code (None: TCP only)."""

    def __init__(self, code, reason=b""):
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


def handshake_request(port, path="/ws", key=None, version="13", extra=None):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    for k, v in (extra or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def read_http_response(sock, timeout=5):
    """Reads one HTTP response head (and body by Content-Length)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n], rest[n:]


class Buffered:
    """A socket whose first recv returns bytes already read."""

    def __init__(self, sock, pending):
        self.sock, self.pending = sock, pending

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        if self.pending:
            out, self.pending = self.pending, b""
            return out
        return self.sock.recv(n)


def http_pipeline(port, reqs, timeout=10):
    """Sends raw HTTP requests in one write on one connection; returns their
    responses in order, as (status, body)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(reqs))
        rest = b""
        for _ in reqs:
            status, _, body, rest = read_http_response(Buffered(s, rest), timeout)
            out.append((status, body))
    return out


class RawWS:
    def __init__(self, port, path="/ws", timeout=5, headers=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        req, key = handshake_request(port, path, extra=headers)
        self.sock.sendall(req)
        status, self.headers, _, self.buf = read_http_response(self.sock, timeout)
        if status != 101:
            raise RuntimeError(f"handshake failed: {status}")
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == want
        self.timeout = timeout

    # -- sending -------------------------------------------------------------
    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length_override is None else length_override
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + key + body

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send(OP_TEXT, text)

    def send_json(self, obj):
        self.send(OP_TEXT, json.dumps(obj))

    # -- receiving -----------------------------------------------------------
    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(None)
            self.buf += chunk

    def recv_frame(self, timeout=None):
        """Returns (fin, opcode, payload). Raises Closed on a close frame."""
        deadline = time.time() + (timeout or self.timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        assert not b1 & 0x80, "server frames must not be masked"
        self._need(off + n, deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        opcode = b0 & 0x0F
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            raise Closed(code, payload[2:])
        return bool(b0 & 0x80), opcode, payload

    def recv_message(self, timeout=None, skip_pings=True):
        """A whole data message (opcode, bytes); control frames are skipped."""
        parts, first = [], None
        while True:
            fin, op, payload = self.recv_frame(timeout)
            if op in (OP_PING, OP_PONG) and skip_pings:
                continue
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def recv_json(self, timeout=None):
        op, data = self.recv_message(timeout)
        assert op == OP_TEXT
        return json.loads(data)

    def expect_close(self, timeout=None):
        """Reads until the server's close frame; returns its code."""
        deadline = time.time() + (timeout or self.timeout)
        try:
            while True:
                self.recv_frame(max(deadline - time.time(), 0.01))
        except Closed as c:
            return c.code

    def tcp_closed(self, timeout=3):
        """True when the server closed TCP within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
