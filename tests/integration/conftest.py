"""Integration harness: starts the real heraldd with a temporary config and
database on free loopback ports, and stops every process it started by PID."""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.port = free_port()
        self.admin_port = free_port()
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
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"heraldd exited with {self.proc.returncode}: {self.read_log()}")
            try:
                r = requests.get(self.admin_url("/health/ready"), timeout=1)
                if r.status_code == 200 and len(self.workers_pids()) == self.workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("heraldd not ready in time: " + self.read_log())

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

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

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
