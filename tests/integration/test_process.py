"""The process model: titles, workers sharing the listeners, restarts after
kill -9, graceful stop, reload, and configuration checking."""
import os
import signal
import subprocess
import time

import requests

from conftest import HERALDD, proc_title
from wsraw import OP_TEXT, RawWS


def wait_until(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def test_process_titles(herald):
    assert proc_title(herald.proc.pid) == "heraldd: master"
    titles = sorted(proc_title(p) for p in herald.child_pids())
    assert titles == ["heraldd: courier", "heraldd: hub", "heraldd: worker 1", "heraldd: worker 2"]


def test_config_check(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("listen = 127.0.0.1:1\nadmin_listen = 127.0.0.1:2\n")
    r = subprocess.run([HERALDD, "-t", "-c", str(good)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    bad = tmp_path / "bad.conf"
    bad.write_text("listen = 127.0.0.1:1\nno_such_key = 1\n")
    r = subprocess.run([HERALDD, "-t", "-c", str(bad)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "no_such_key" in r.stderr and ":2" in r.stderr


def test_thousand_connections_span_workers(herald):
    clients = []
    try:
        for _ in range(1000):
            ws = RawWS(herald.port, "/ws")
            clients.append(ws)
        for ws in clients:
            assert ws.recv_json()["type"] == "welcome"

        def spread():
            stats = herald.api("GET", "/api/stats").json()
            per = [w["connections"] for w in stats["workers"]]
            return per if sum(per) == 1000 else None
        per = wait_until(spread)
        assert per and sum(per) == 1000
        assert all(n > 0 for n in per), per
    finally:
        for ws in clients:
            ws.close()


def test_killed_worker_is_restarted(herald):
    victim = herald.workers_pids()[0]
    title = proc_title(victim)
    os.kill(victim, signal.SIGKILL)
    restarted = wait_until(lambda: [p for p in herald.workers_pids()
                                    if p != victim and proc_title(p) == title])
    assert restarted, herald.read_log()
    assert "child_died" in herald.read_log()
    # new connections are served, on every worker eventually
    for _ in range(20):
        ws = RawWS(herald.port, "/ws")
        assert ws.recv_json()["type"] == "welcome"
        ws.close()


def test_killed_hub_is_restarted_and_ready_again(herald):
    hub = herald.hub_pid()
    os.kill(hub, signal.SIGKILL)
    assert wait_until(lambda: herald.hub_pid() not in (None, hub))
    assert wait_until(lambda: requests.get(herald.admin_url("/health/ready"), timeout=2).status_code == 200)
    assert herald.publish("race:1").status_code == 200


def test_sigterm_closes_clients_with_1001_and_exits(herald):
    clients = [RawWS(herald.port, "/ws") for _ in range(10)]
    for ws in clients:
        ws.recv_json()
    pids = [herald.proc.pid] + herald.child_pids()
    herald.proc.send_signal(signal.SIGTERM)
    for ws in clients:
        assert ws.expect_close(timeout=10) == 1001
    herald.proc.wait(timeout=10)       # shutdown_timeout: gone within 10 s
    assert herald.proc.returncode == 0
    assert not [p for p in pids if os.path.exists(f"/proc/{p}") and
                proc_title(p).startswith("heraldd")]


def test_sighup_reloads_a_changed_limit(herald):
    ws = RawWS(herald.port, "/echo")
    ws.send(OP_TEXT, b"a" * 2000)
    assert ws.recv_message() == (OP_TEXT, b"a" * 2000)
    ws.close()
    herald.write_config(extra="max_message_size = 1024")
    herald.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: herald.read_log().count("event=reloaded") >= 3)  # hub + 2 workers

    def rejected():
        ws = RawWS(herald.port, "/echo")
        try:
            ws.send(OP_TEXT, b"a" * 2000)
            return ws.expect_close() == 1009
        finally:
            ws.close()
    assert rejected()
    # an invalid file is refused and the old settings stay
    with open(herald.conf, "a") as f:
        f.write("\nbogus_key = 1\n")
    herald.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload_failed" in herald.read_log())
    assert rejected()


def test_sigusr1_reopens_log(herald):
    os.rename(herald.log, herald.log + ".1")
    herald.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: os.path.exists(herald.log))
    herald.publish("race:1")
    requests.get(herald.admin_url("/health"), timeout=5)
    herald.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "event=reload" in open(herald.log).read())
