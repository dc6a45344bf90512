"""The porting examples (contrib/examples/, docs/porting.md) run against the
real daemon, each with the namespaces and keys of its own herald.conf: the
client (Node, contrib/js/herald.mjs) starts and subscribes, the backend
(Python, HTTP API) runs, and both must exit 0 having checked what they show."""
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import API_KEY, JWT_SECRET, ROOT

NODE = shutil.which("node") or "/usr/bin/node"
NODE_MODULES = os.path.join(ROOT, "tests", "node", "node_modules")
EXAMPLES = os.path.join(ROOT, "contrib", "examples")

pytestmark = pytest.mark.skipif(
    not os.access(NODE, os.X_OK) or not os.path.isdir(os.path.join(NODE_MODULES, "ws")),
    reason="node or tests/node/node_modules missing: run contrib/setup.sh")

# Keys of an example's herald.conf that the harness sets itself (ports,
# database, secrets, log file).
HARNESS_KEYS = {"listen", "admin_listen", "workers", "database", "api_key", "jwt_secret",
                "log_file", "log_level", "dashboard_dir", "echo"}


def example_config(name):
    """The example's herald.conf without the keys the harness owns: appended
    after the harness's own keys, its top-level keys override them (the last
    one wins) and its [namespace] sections are the daemon's."""
    out = []
    with open(os.path.join(EXAMPLES, name, "herald.conf")) as f:
        for line in f:
            key = line.split("=", 1)[0].strip() if "=" in line else None
            if key in HARNESS_KEYS:
                continue
            out.append(line)
    return "".join(out)


def start(herald_factory, name):
    return herald_factory(namespaces=example_config(name)).start()


def example_env(h):
    return {**os.environ,
            "HERALD_WS_URL": h.ws_url(),
            "HERALD_API_URL": h.admin_url(""),
            "HERALD_API_KEY": API_KEY,
            "HERALD_JWT_SECRET": JWT_SECRET,
            "NODE_PATH": NODE_MODULES,
            "PYTHONDONTWRITEBYTECODE": "1"}


class Proc:
    """A process whose output lines are collected by a thread, so waits on
    it are bounded."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True)
        self.lines = []
        self.q = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)
            self.q.put(line)
        self.q.put(None)

    @property
    def out(self):
        return "".join(self.lines)

    def wait_line(self, text, timeout):
        deadline = time.time() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(deadline - time.time(), 0.01))
            except queue.Empty:
                line = None
            if line is not None and line.strip() == text:
                return
            if line is None or time.time() >= deadline:
                raise AssertionError(f"no {text!r} line in time:\n{self.out}")

    def wait(self, timeout):
        """The exit status, once the output has been read to its end."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, 9)
            self.p.wait(5)
            self.reader.join(5)
            raise AssertionError(f"still running after {timeout} s:\n{self.out}")
        self.reader.join(5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, 9)
            self.p.wait(5)


def run_example(h, name, timeout=30):
    """Starts the example's client, waits for its "ready", runs the backend,
    and returns (client output, backend output); both must exit 0."""
    env = example_env(h)
    client = Proc([NODE, os.path.join(EXAMPLES, name, "client.mjs")], env)
    try:
        client.wait_line("ready", 15)
        backend = Proc([sys.executable, os.path.join(EXAMPLES, name, "backend.py")], env)
        try:
            brc = backend.wait(timeout)
        finally:
            backend.kill()
        crc = client.wait(timeout)
    finally:
        client.kill()
    report = f"--- client\n{client.out}--- backend\n{backend.out}--- log\n{h.read_log()}"
    assert brc == 0, report
    assert crc == 0, report
    return client.out, backend.out


def test_race_odds_throttled(herald_factory):
    h = start(herald_factory, "race-odds")
    client, backend = run_example(h, "race-odds")
    print(client, backend)
    for race in ("1", "2"):
        m = re.search(rf"^race {race}: (\d+) updates for (\d+) ticks, gaps ([\d ]*) ms$", client, re.M)
        assert m, client
        updates, ticks, gaps = int(m[1]), int(m[2]), [int(g) for g in m[3].split()]
        # 3 s of updates every 50 ms: one a second gets through, the newest
        assert ticks >= 40 and 3 <= updates <= 5 and all(g >= 950 for g in gaps), m[0]
        assert f"ok: race {race}: the last update is the newest tick" in client
    assert "ok: most publishes were coalesced away" in backend


def test_workflow_webhooks(herald_factory):
    h = start(herald_factory, "workflow-webhooks")
    client, backend = run_example(h, "workflow-webhooks")
    print(client, backend)
    assert "rita: wf_1 is now approved" in client
    assert "ok: carl saw bulk.completed: 3 succeeded, 1 failed" in client
    assert "ok: relay verified 6 deliveries for wf_1" in backend
    assert "ok: relay verified workflow.cancelled for the 3 bulk-cancelled" in backend
    assert "answered 503, retried and accepted under the same webhook-id" in backend
    assert backend.count("slack <- ") == 15, backend  # 6 for wf_1, 3 created, 3 x 2 cancelled


def test_sports_odds_filters(herald_factory):
    h = start(herald_factory, "sports-odds")
    client, backend = run_example(h, "sports-odds")
    print(client, backend)
    assert "ok: an expired token: HTTP 401 before the upgrade" in client
    assert "ok: odds:tennis is not in the plan: forbidden" in client
    assert "ok: only the subscribed filters' updates arrived: odds:football.epl 1, match:200 2" in client
    assert "ok: GET /api/connections?user=pat" in backend


def test_prediction_market_notifications(herald_factory):
    h = start(herald_factory, "prediction-market")
    client, backend = run_example(h, "prediction-market")
    print(client, backend)
    assert "bob is bob, 0 unread" in client
    assert "ok: bob got global announcement" in client
    assert "ok: unread on load: 2" in client
    assert "ok: unread on load after reading one: 1" in client
    assert "ok: unread on load after reading all: 0" in client
    assert "ok: GET /api/users/bob/notifications: both read, unread 0" in backend


def test_ecommerce_devices_and_admin(herald_factory):
    h = start(herald_factory, "ecommerce")
    client, backend = run_example(h, "ecommerce")
    print(client, backend)
    assert "ok: alice's phone saw order.created, order.paid, order.shipped" in client
    assert "ok: alice's laptop saw order.created, order.paid, order.shipped" in client
    assert "ok: bob may not subscribe to order:alice: forbidden" in client
    assert "ok: the admin room saw every order event and the stock alert" in client
    assert "ok: a page opened later shows the current stock: 3" in client
    assert "ok: alice is connected from 2 devices" in backend
    assert "ok: /health/ready answers 200" in backend
