"""The JavaScript client (contrib/js): its Node tests (tests/js/client.test.mjs,
run with node --test against a daemon started here) and a real page in
headless Chromium (tests/js/browser.mjs) that survives the daemon's restart."""
import json
import os
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import API_KEY, JWT_SECRET, ROOT

NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.path.join(ROOT, "tests", "node", "node_modules")
JS_DIR = os.path.join(ROOT, "contrib", "js")

pytestmark = pytest.mark.skipif(
    NODE is None or not os.path.isdir(os.path.join(NODE_MODULES, "ws")),
    reason="node or tests/node/node_modules missing: run contrib/setup.sh")

# Short token lifetimes are exact, and the grace after token_expired short.
CLIENT_CONFIG = "jwt_leeway = 0\ntoken_grace = 1\n"

SCENARIOS = [
    "live events reach the handler in order and publish resolves",
    "notifications arrive and read marks them",
    "resume after kicks and kill -9 of the worker, nothing lost or doubled",
    "resume across kill -9 of the hub while publishing",
    "a subscribe answered unavailable while the hub is away is asked again",
    "a room that cannot be recovered says so, then goes on in order",
    "getToken is called again after close 4003 and the rooms resume",
    "token_expired is answered with a fresh token without reconnecting",
    "auth_failed asks getToken again",
    "duplicates and stale seqs from the server never reach a handler",
    "backoff is full jitter within the configured bounds",
    "the classic build exposes the same client",
]


def classic_build(tmp_path):
    """contrib/js/herald.js as the build makes it; regenerated into tmp_path
    when missing or older than herald.mjs (a tree not yet built)."""
    built = os.path.join(JS_DIR, "herald.js")
    src = os.path.join(JS_DIR, "herald.mjs")
    if os.path.exists(built) and os.path.getmtime(built) >= os.path.getmtime(src):
        return built
    out = os.path.join(str(tmp_path), "herald.js")
    with open(out, "w") as f:
        subprocess.run(["sh", os.path.join(ROOT, "build-aux", "js-classic.sh"), src],
                       stdout=f, check=True, timeout=30)
    return out


def node_env(h, tmp_path):
    return {
        **os.environ,
        "HERALD_WS_URL": h.ws_url(),
        "HERALD_ADMIN_URL": h.admin_url(""),
        "HERALD_API_KEY": API_KEY,
        "HERALD_JWT_SECRET": JWT_SECRET,
        "HERALD_WORKER_PIDS": json.dumps(h.worker_pid_by_slot()),
        "HERALD_HUB_PID": str(h.hub_pid()),
        "HERALD_MASTER_PID": str(h.proc.pid),
        "HERALD_JS_CLASSIC": classic_build(tmp_path),
        "NODE_PATH": NODE_MODULES,
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_node_client(herald_factory, tmp_path, name):
    # One daemon per scenario: some kill its worker or hub.
    h = herald_factory(extra=CLIENT_CONFIG).start()
    pattern = "^" + name.replace("(", r"\(").replace(")", r"\)") + "$"
    try:
        r = subprocess.run([NODE, "--test", "--test-reporter=spec", f"--test-name-pattern={pattern}",
                            os.path.join(ROOT, "tests", "js", "client.test.mjs")],
                           env=node_env(h, tmp_path), capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"node test timed out: {e.stdout}{e.stderr}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + h.read_log()
    assert "# pass 1" in out or "pass 1" in out, out


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK) or
                    not os.path.isdir(os.path.join(NODE_MODULES, "puppeteer-core")),
                    reason="chromium or puppeteer-core missing: run contrib/setup.sh")
@pytest.mark.parametrize("build", ["classic", "module"])
def test_browser_client_survives_restart(herald_factory, tmp_path, build):
    """A page using the client (herald.js or herald.mjs) in headless Chromium
    receives events, then the daemon restarts (same database and port) and
    the page resumes with nothing lost or doubled."""
    h = herald_factory(extra=CLIENT_CONFIG).start()
    env = {**node_env(h, tmp_path), "CHROMIUM": CHROMIUM, "HERALD_PAGE_BUILD": build,
           "HERALD_SCREENSHOT": os.path.join(str(tmp_path), f"client-{build}.png")}
    p = subprocess.Popen([NODE, os.path.join(ROOT, "tests", "js", "browser.mjs")], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    lines = []
    # a watchdog bounds the whole run, even a read that never returns
    watchdog = threading.Timer(90, lambda: os.killpg(p.pid, signal.SIGKILL))
    watchdog.start()
    try:
        restarted = False
        while True:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip() == "RESTART" and not restarted:
                h.stop()
                h.start()
                restarted = True
                p.stdin.write("restarted\n")
                p.stdin.flush()
        rc = p.wait(30)
        err = p.stderr.read()
    finally:
        watchdog.cancel()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    out = "".join(lines)
    assert rc == 0, out + err + h.read_log()
    assert restarted, out + err
    result = json.loads(lines[-1])
    assert result["ok"], result
