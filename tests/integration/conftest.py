"""Integration harness: starts the real heraldd with a temporary config and
database on free loopback ports, and stops every process it started by PID."""
import base64
import collections
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERALDD = os.environ.get("HERALDD", os.path.join(ROOT, "heraldd"))
HERALDCTL = os.environ.get("HERALDCTL", os.path.join(ROOT, "heraldctl"))
HERALD_BENCH = os.environ.get("HERALD_BENCH", os.path.join(ROOT, "herald-bench"))

API_KEY = "test-api-key"
JWT_SECRET = "test-jwt-secret"


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n):
    """n distinct free loopback ports outside the kernel's ephemeral range: a
    port the kernel hands out to outgoing connections (the tests make
    thousands) could be taken again between this check and heraldd's bind."""
    lo, hi = _ephemeral_range()
    candidates = list(range(10000, lo)) or list(range(hi + 1, 65536))
    held = []
    try:
        for port in random.sample(candidates, min(500, len(candidates))):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            if len(held) == n:
                return [h.getsockname()[1] for h in held]
    finally:
        for h in held:
            h.close()
    raise RuntimeError("no free loopback ports")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub=None, secret=JWT_SECRET, alg="HS256", ttl=3600, **claims):
    """An HS256 JWT minted independently of herald's own code."""
    now = int(time.time())
    payload = {"iat": now, "exp": now + ttl}
    if sub is not None:
        payload["sub"] = sub
    payload.update(claims)
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(sig)}"


def children_of(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


class Herald:
    """One heraldd instance: config, ports, database and log under tmpdir."""

    def __init__(self, tmpdir, workers=2, extra="", namespaces=None, env=None):
        self.dir = str(tmpdir)
        self.port, self.admin_port = free_ports(2)
        self.db = os.path.join(self.dir, "herald.db")
        self.conf = os.path.join(self.dir, "herald.conf")
        self.log = os.path.join(self.dir, "herald.log")
        self.workers = workers
        self.env = env or {}
        self.proc = None
        self.write_config(extra, namespaces)

    def write_config(self, extra="", namespaces=None):
        ns = namespaces if namespaces is not None else DEFAULT_NAMESPACES
        with open(self.conf, "w") as f:
            f.write(f"""listen = 127.0.0.1:{self.port}
admin_listen = 127.0.0.1:{self.admin_port}
workers = {self.workers}
database = {self.db}
api_key = {API_KEY}
jwt_secret = {JWT_SECRET}
allow_anonymous = yes
echo = on
log_level = info
log_file = {self.log}
{extra}
{ns}
""")

    # -- lifecycle -----------------------------------------------------------
    def start(self, wait=True):
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([HERALDD, "-f", "-c", self.conf],
                                     stdout=self.stderr, stderr=self.stderr,
                                     env={**os.environ, **self.env},
                                     start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        """Until the daemon is ready and every worker has reached the hub."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"heraldd exited with {self.proc.returncode}: "
                                   f"{self.read_log()}{self.read_stderr()}")
            try:
                r = requests.get(self.admin_url("/health/ready"), timeout=1)
                if (r.status_code == 200 and len(self.workers_pids()) == self.workers and
                        len(self.api("GET", "/api/stats").json()["workers"]) == self.workers):
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError("heraldd not ready in time: " + self.read_log() + self.read_stderr())

    def stop(self, timeout=15):
        """SIGTERM to the master; SIGKILL to anything of ours still alive after."""
        if not self.proc:
            return
        pids = [self.proc.pid] + children_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids + children_of(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.stderr.close()
        self.proc = None
        self.check_sanitizers()

    def check_sanitizers(self):
        """In a sanitizer build, any report (leak, overflow, undefined
        behaviour) from any herald process fails the test."""
        with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
            text = f.read()
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if mark in text:
                i = text.index(mark)
                raise AssertionError("sanitizer report from heraldd:\n" + text[max(i - 200, 0):i + 3000])

    def kill_all(self):
        """SIGKILL every herald process at once (master first, then children)."""
        pids = [self.proc.pid] + children_of(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(5)
        deadline = time.time() + 5
        while time.time() < deadline and any(os.path.exists(f"/proc/{p}") and
                                             proc_title(p).startswith("heraldd") for p in pids[1:]):
            time.sleep(0.02)
        self.stderr.close()
        self.proc = None
        self.check_sanitizers()

    # -- processes -----------------------------------------------------------
    def child_pids(self):
        return children_of(self.proc.pid)

    def workers_pids(self):
        return [p for p in self.child_pids() if proc_title(p).startswith("heraldd: worker")]

    def hub_pid(self):
        for p in self.child_pids():
            if proc_title(p).startswith("heraldd: hub"):
                return p
        return None

    def read_log(self, path=None):
        try:
            with open(path or self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def read_stderr(self):
        return self.read_log(os.path.join(self.dir, "stderr.log"))

    # -- clients -------------------------------------------------------------
    def ws_url(self, path="/ws", **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{q}" if q else "")

    def admin_url(self, path):
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def api(self, method, path, json_body=None, key=API_KEY, **kw):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.request(method, self.admin_url(path), json=json_body,
                                headers=headers, timeout=10, **kw)

    def publish(self, room, event="test", data=None, **extra):
        body = {"room": room, "event": event, "data": data if data is not None else {}}
        body.update(extra)
        r = self.api("POST", "/api/publish", body)
        return r

    def sqlite(self, sql):
        out = subprocess.run(["sqlite3", "-json", self.db, sql], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return json.loads(out) if out.strip() else []

    def api_session(self, key=API_KEY):
        """A keep-alive requests.Session carrying the API key (one per thread)."""
        s = requests.Session()
        if key:
            s.headers["Authorization"] = f"Bearer {key}"
        return s

    def client(self, **kw):
        """A connected protocol client (see Client); it has read its welcome."""
        return Client(self.port, **kw)

    def worker_pid_by_slot(self):
        """{1: pid, 2: pid, ...} from the workers' process titles."""
        out = {}
        for p in self.workers_pids():
            m = re.match(r"heraldd: worker (\d+)", proc_title(p))
            if m:
                out[int(m.group(1))] = p
        return out


DEFAULT_NAMESPACES = """
[namespace race]
subscribe = public
publish = api
history_size = 1000
history_ttl = 86400

[namespace odds]
subscribe = public
publish = api
throttle_ms = 300

[namespace chat]
subscribe = authenticated
publish = authenticated

[namespace market]
subscribe = claim
publish = api

[namespace ops]
subscribe = role:ops
publish = role:ops

[namespace small]
subscribe = public
history_size = 5
"""


@pytest.fixture
def herald_factory(tmp_path):
    started = []

    def make(**kw):
        d = tmp_path / f"h{len(started)}"
        d.mkdir()
        h = Herald(d, **kw)
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def herald(herald_factory):
    return herald_factory().start()


@pytest.fixture(scope="module")
def shared_herald(tmp_path_factory):
    """One heraldd with the default configuration for a whole test module:
    for tests that need no configuration of their own, use rooms and users
    no other test of the module uses, and leave no client connected."""
    h = Herald(tmp_path_factory.mktemp("shared"))
    try:
        h.start()
        yield h
    finally:
        h.stop()


# ---- Redis (scale-out) ---------------------------------------------------------------

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


class RespError(Exception):
    """An error reply from Redis."""


class Resp:
    """A minimal RESP2 client over a plain socket: call() sends a command and
    returns its reply (bytes, int, list or None; an error reply raises
    RespError); read() returns the next reply (pub/sub messages)."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")


class RedisServer:
    """A redis-server of our own on a free loopback port, persistence off,
    stopped by its PID. start() again after kill() reuses the port."""

    def __init__(self, tmpdir):
        self.dir = str(tmpdir)
        self.port = free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=10):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.time() + timeout
        while True:
            try:
                if self.call("PING") == b"PONG":
                    return self
            except (OSError, RespError):
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)

    def call(self, *args):
        """One command on a connection of its own."""
        r = Resp(self.port)
        try:
            return r.call(*args)
        finally:
            r.close()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        """kill -9: whatever it held is gone."""
        if self.proc:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
            self.log.close()

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture
def redis_server(tmp_path):
    """A running redis-server (contrib/setup.sh installs it)."""
    d = tmp_path / "redis"
    d.mkdir()
    r = RedisServer(d)
    try:
        yield r.start()
    finally:
        r.stop()


# ---- a synchronous client of the herald protocol ---------------------------------

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EPOCH_RE = re.compile(r"^[0-9a-f]{16}$")
_ids = itertools.count(1)


def wait_until(pred, timeout=10, step=0.05):
    """Polls pred until it returns something true or timeout passes; returns
    its last value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


def poll(fetch, ok, timeout=5, step=0.05):
    """Calls fetch() until ok(value) holds or timeout passes; returns the last
    value either way, so that the caller's assertion shows what was seen."""
    deadline = time.time() + timeout
    while True:
        v = fetch()
        if ok(v) or time.time() >= deadline:
            return v
        time.sleep(step)


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f"upgrade refused with HTTP {status}: {body!r}")
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def _ws_frame(opcode, payload):
    """A masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    if n:
        mask = (key * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    else:
        body = b""
    return head + key + body


class Client:
    """One WebSocket connection to /ws speaking herald's JSON protocol, over a
    plain socket so that tests stay synchronous and every wait is bounded.

    Every JSON message received is appended to .messages (arrival order) and
    to .inbox (not yet consumed by expect()). Server pings are answered. When
    the server closes, .close_code is its close code (None: TCP closed without
    a close frame) and .closed is True."""

    def __init__(self, port, token=None, bearer=None, path="/ws", headers=None,
                 timeout=5, rcvbuf=None, welcome=True):
        if token is not None:
            path += ("&" if "?" in path else "?") + "token=" + token
        hdrs = dict(headers or {})
        if bearer is not None:
            hdrs["Authorization"] = f"Bearer {bearer}"
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"] + [f"{k}: {v}" for k, v in hdrs.items()]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in data:
            self.sock.settimeout(max(deadline - time.time(), 0.01))
            chunk = self.sock.recv(65536)
            if not chunk:
                self.sock.close()
                raise HandshakeRefused(0, {}, data)
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode(errors="replace").split("\r\n")
        status = int(status_line.split()[1])
        self.headers = {}
        for line in hlines:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(rest) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            self.sock.close()
            raise HandshakeRefused(status, self.headers, rest[:n])
        want = base64.b64encode(hashlib.sha1(
            key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
        assert self.headers.get("sec-websocket-accept") == want
        self.buf = bytearray(rest)
        self.timeout = timeout
        self.messages = []
        self.raw = []                  # the text of each message, as received
        self.inbox = collections.deque()
        self.closed = False
        self.close_code = None
        self.close_reason = b""
        self._frag = None
        self._parse()                  # frames that came with the 101 response
        self.welcome = self.expect("welcome", timeout) if welcome else None

    # -- sending ---------------------------------------------------------------
    def send(self, obj):
        data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(_ws_frame(0x1, data))

    def send_many(self, objs):
        """Several messages in one write (they reach the server together)."""
        self.sock.sendall(b"".join(_ws_frame(0x1, json.dumps(o).encode()) for o in objs))

    def call(self, type_, timeout=None, **fields):
        """Sends a request with a fresh id; returns the first reply with that id."""
        rid = f"r{next(_ids)}"
        self.send({"type": type_, "id": rid, **fields})
        return self.expect(id=rid, timeout=timeout)

    def subscribe(self, room, since=None, timeout=None):
        """Subscribes and returns the `subscribed` reply (asserting it is one)."""
        msg = {"room": room}
        if since is not None:
            msg["since"] = since
        r = self.call("subscribe", timeout=timeout, **msg)
        assert r["type"] == "subscribed", r
        return r

    def close(self, code=1000):
        if not self.closed:
            try:
                self.sock.sendall(_ws_frame(0x8, struct.pack("!H", code)))
            except OSError:
                pass
        self.abort()

    def abort(self):
        """Drops the TCP connection without a close handshake."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving -------------------------------------------------------------
    def fileno(self):
        return self.sock.fileno()

    def pump(self, timeout=0.0):
        """Reads what is available (waiting up to timeout for the first bytes)
        and parses every complete frame. Returns True when bytes arrived."""
        if self.closed:
            return False
        try:
            # poll, not select: a test may hold thousands of descriptors.
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            r = poller.poll(max(timeout, 0) * 1000)
        except (OSError, ValueError):
            self.closed = True
            return False
        if not r:
            return False
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
            self._parse()
            return False
        self.buf += chunk
        self._parse()
        return True

    def _parse(self):
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < off + n:
                return
            payload = bytes(buf[off:off + n])
            del buf[:off + n]
            op, fin = b0 & 0x0F, bool(b0 & 0x80)
            if op == 0x9:
                try:
                    self.sock.sendall(_ws_frame(0xA, payload))
                except OSError:
                    pass
            elif op == 0xA:
                pass
            elif op == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:]
                try:
                    self.sock.sendall(_ws_frame(0x8, payload[:2]))
                except OSError:
                    pass
                self.abort()
                return
            else:
                if op in (0x1, 0x2):
                    self._frag = [payload]
                elif self._frag is not None:
                    self._frag.append(payload)
                if fin and self._frag is not None:
                    text = b"".join(self._frag)
                    msg = json.loads(text)
                    self._frag = None
                    self.raw.append(text)
                    self.messages.append(msg)
                    self.inbox.append(msg)

    @staticmethod
    def _matches(msg, type_, fields):
        if type_ is not None and msg.get("type") != type_:
            return False
        return all(k in msg and msg[k] == v for k, v in fields.items())

    def take(self, type_=None, **fields):
        """The first unconsumed message matching, removed from the inbox; or None."""
        for i, m in enumerate(self.inbox):
            if self._matches(m, type_, fields):
                del self.inbox[i]
                return m
        return None

    def expect(self, type_=None, timeout=None, **fields):
        """Waits for (and consumes) the first message of type_ whose fields
        equal the given values; fails the test when none comes in time."""
        deadline = time.time() + (timeout if timeout is not None else self.timeout)
        while True:
            m = self.take(type_, **fields)
            if m is not None:
                return m
            left = deadline - time.time()
            if self.closed or left <= 0:
                state = f"closed ({self.close_code})" if self.closed else "timed out"
                raise AssertionError(f"{state} waiting for {type_} {fields}; "
                                     f"unconsumed: {list(self.inbox)[-10:]}")
            self.pump(min(left, 0.5))

    def drain(self, duration):
        """Reads everything that arrives during duration seconds."""
        deadline = time.time() + duration
        while not self.closed and time.time() < deadline:
            self.pump(deadline - time.time())

    def expect_close(self, timeout=None):
        """Waits until the server closes; returns its close code (None: no
        close frame, only TCP)."""
        deadline = time.time() + (timeout if timeout is not None else self.timeout)
        while not self.closed and time.time() < deadline:
            self.pump(deadline - time.time())
        assert self.closed, f"still open after {timeout} s; unconsumed: {list(self.inbox)[-10:]}"
        return self.close_code

    def events(self, room=None):
        """Every event received on this connection (for room), in arrival order."""
        return [m for m in self.messages
                if m.get("type") == "event" and (room is None or m["room"] == room)]

    def seqs(self, room):
        return [m["seq"] for m in self.events(room)]

    def wait_seq(self, room, seq, timeout=None):
        """Reads until an event of room with seq >= seq arrived; returns the
        room's seqs."""
        def done():
            s = self.seqs(room)
            return s if s and s[-1] >= seq else None
        return self._pump_until(done, timeout, lambda: f"{room} seq {seq}: got {self.seqs(room)[-20:]}")

    def wait_events(self, room, n, timeout=None):
        """Reads until n events of room arrived; returns them."""
        def done():
            ev = self.events(room)
            return ev if len(ev) >= n else None
        return self._pump_until(done, timeout, lambda: f"{n} events in {room}: got {len(self.events(room))}")

    def _pump_until(self, done, timeout, what):
        """Reads until done() returns something, which it returns; fails with
        what() once the connection closed or the timeout passed."""
        deadline = time.time() + (timeout if timeout is not None else self.timeout)
        while True:
            got = done()
            if got is not None:
                return got
            left = deadline - time.time()
            if self.closed or left <= 0:
                raise AssertionError(f"waiting for {what()}"
                                     f" ({'closed %s' % self.close_code if self.closed else 'timeout'})")
            self.pump(min(left, 0.5))


def pump_all(clients, timeout=0.05):
    """Reads from whichever of clients has data, waiting up to timeout."""
    live = [c for c in clients if not c.closed]
    if not live:
        return
    try:
        r, _, _ = select.select(live, [], [], timeout)
    except (OSError, ValueError):
        r = live
    for c in r:
        c.pump(0)


def connect_on_all_workers(h, n_min=12, n_max=64, **kw):
    """Opens clients (kw as for Client) until GET /api/connections shows
    them spread over every worker; returns (clients, set of worker numbers)."""
    clients = []
    while True:
        while len(clients) < n_min:
            clients.append(h.client(**kw))
        ids = {c.welcome["client_id"] for c in clients}

        def placed():
            conns = h.api("GET", "/api/connections").json()["connections"]
            mine = [x for x in conns if str(x["id"]) in ids]
            return mine if len(mine) == len(ids) else None
        mine = wait_until(placed, timeout=5)
        assert mine, "the hub does not list every connection"
        workers = {x["worker"] for x in mine}
        if len(workers) == h.workers or len(clients) >= n_max:
            return clients, workers
        n_min = len(clients) + 8


def upgrade_refusal(port, path="/ws", headers=None):
    """Opens /ws expecting the upgrade to be refused: (status, error JSON)."""
    try:
        c = Client(port, path=path, headers=headers, welcome=False)
    except HandshakeRefused as e:
        return e.status, (e.json() if e.body else None)
    c.abort()
    raise AssertionError("the upgrade was accepted")
