"""examplelib.py -- what the Python backends of contrib/examples/ share: the
HTTP API of herald with urllib (standard library only) and a time limit.

Settings come from the environment, with the development config's values as
defaults:

    HERALD_API_URL   admin listener          (http://127.0.0.1:8081)
    HERALD_API_KEY   the config's api_key    (dev-api-key)
"""
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

API_URL = os.environ.get("HERALD_API_URL", "http://127.0.0.1:8081").rstrip("/")
API_KEY = os.environ.get("HERALD_API_KEY", "dev-api-key")


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def api(method, path, body=None, expect=(200, 201, 202)):
    """Calls the HTTP API and returns the decoded JSON answer. A status not in
    expect raises ApiError (its .status and .body say why)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API_URL + path, data=data, method=method, headers={
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = raw.decode(errors="replace")
    if status not in expect:
        raise ApiError(status, answer)
    return answer


def publish(room_or_rooms, event, data, **extra):
    """POST /api/publish to one room (a string) or several (a list)."""
    key = "rooms" if isinstance(room_or_rooms, list) else "room"
    return api("POST", "/api/publish", {key: room_or_rooms, "event": event, "data": data, **extra})


def time_limit(seconds):
    """Ends the process with status 2 if it is still running after seconds."""
    def expired(signum, frame):
        print(f"FAIL: not done within {seconds} s", file=sys.stderr, flush=True)
        os._exit(2)
    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


_out = threading.Lock()


def say(line):
    """Prints one whole line, even with other threads printing."""
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def check(cond, what):
    """Prints "ok: what", or "FAIL: what" and exits 1."""
    if not cond:
        say(f"FAIL: {what}")
        sys.exit(1)
    say(f"ok: {what}")
