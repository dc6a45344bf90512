#!/usr/bin/env python3
"""workflow-webhooks backend: an odds change needs a trader's approval, then
risk's. The backend defines the workflow, registers a webhook for workflow.*
events that a small relay turns into Slack messages, creates a workflow and
approves the trader step; rita approves the risk step from her browser
(client.mjs). Then it bulk-cancels three workflows. The relay verifies every
delivery's signature and answers the first one 503, so it is retried.

    node contrib/examples/workflow-webhooks/client.mjs &
    python3 contrib/examples/workflow-webhooks/backend.py

With SLACK_WEBHOOK_URL set, the relay also posts the messages there.
"""
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "webhooks"))
from examplelib import api, check, say, time_limit  # noqa: E402
from verify import VerificationError, verify  # noqa: E402  (contrib/webhooks/verify.py)

SLACK_URL = os.environ.get("SLACK_WEBHOOK_URL")
ICONS = {"created": ":new:", "approved": ":white_check_mark:", "rejected": ":x:",
         "cancelled": ":wastebasket:", "completed": ":trophy:", "updated": ":pencil2:"}


def post_to_slack(text):
    req = urllib.request.Request(SLACK_URL, data=json.dumps({"text": text}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5).close()
    except OSError as e:
        say(f"relay: Slack refused: {e}")


class Relay:
    """The Slack relay: verifies herald's deliveries, then posts {"text"}."""

    def __init__(self):
        self.secret = None          # set once the endpoint is registered
        self.seen = {}              # webhook-id -> payload (deduplication)
        self.attempts = {}          # webhook-id -> attempts received
        self.refused_once = None    # the webhook-id answered 503 the first time
        self.lock = threading.Lock()

    def handle(self, headers, body):
        try:
            payload = verify(self.secret, headers, body)
        except VerificationError as e:
            say(f"relay: refused a delivery: {e}")
            return 400, {}
        msg_id = headers["webhook-id"]
        with self.lock:
            self.attempts[msg_id] = self.attempts.get(msg_id, 0) + 1
            if self.refused_once is None:
                # Pretend to be overloaded once: herald retries after Retry-After.
                self.refused_once = msg_id
                say(f"relay: {msg_id} ({payload['type']}) answered 503, retry in 1 s")
                return 503, {"Retry-After": "1"}
            if msg_id in self.seen:         # at least once: drop duplicates
                return 200, {}
            self.seen[msg_id] = payload
        wf, change = payload["data"], payload["data"]["change"]
        what = payload["type"].split(".", 1)[1]
        text = (f"{ICONS.get(what, '')} {wf['id']} {wf['definition']} {what}"
                f" by {change['actor']} (step {change['step']}, now {wf['status']})")
        say(f"slack <- {text}   [{msg_id}, attempt {self.attempts[msg_id]}]")
        if SLACK_URL:   # after answering: a slow Slack must not fail herald's attempt
            threading.Thread(target=post_to_slack, args=(text,), daemon=True).start()
        return 200, {}

    def events(self, wf_id):
        with self.lock:
            return [p["type"] for p in self.seen.values() if p["data"]["id"] == wf_id]


def serve(relay):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, headers = relay.handle(self.headers, body)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/slack"


def wait_for(pred, seconds, what):
    deadline = time.time() + seconds
    while not pred():
        if time.time() > deadline:
            check(False, what)
        time.sleep(0.05)
    check(True, what)


def main():
    time_limit(45)
    relay = Relay()
    url = serve(relay)

    # 1. The definition (a 409 means it exists from an earlier run).
    api("POST", "/api/workflow-definitions", {"name": "odds_change", "steps": [
        {"name": "trader", "approvers": {"roles": ["trader"]}, "required": 1},
        {"name": "risk", "approvers": {"roles": ["risk"], "users": ["rita"]}, "required": 1},
    ]}, expect=(201, 409))

    # 2. The webhook: workflow events, once each (their workflow:{id} copy).
    hook = api("POST", "/api/webhooks", {"url": url, "events": ["workflow.*"],
                                         "rooms": ["workflow:*"], "max_attempts": 5})
    relay.secret = hook["secret"]       # shown in this answer only: keep it
    say(f"webhook {hook['id']} -> {url}")

    try:
        # 3. carl asks for an odds change; tom (role trader) approves step 1.
        wf = api("POST", "/api/workflows", {"definition": "odds_change", "created_by": "carl",
                                            "data": {"market": 7, "selection": "home", "odds": 2.5}})
        say(f"created {wf['id']}: {wf['status']}, step {wf['current_step']}")
        wf = api("POST", f"/api/workflows/{wf['id']}/approve",
                 {"actor": "tom", "roles": ["trader"], "comment": "price checked",
                  "version": wf["version"]})
        check(wf["status"] == "in_progress" and wf["current_step"] == "risk",
              f"{wf['id']} approved by the trader, waiting for risk")

        # 4. rita approves the risk step over WebSocket (client.mjs).
        wait_for(lambda: api("GET", f"/api/workflows/{wf['id']}")["status"] == "approved", 15,
                 f"{wf['id']} approved by rita over WebSocket")
        full = api("GET", f"/api/workflows/{wf['id']}")
        for h in full["history"]:
            say(f"  history: {h['action']} by {h['actor']} at step {h['step']}: {h['comment']}")

        # 5. Bulk cancel: three of carl's requests and an id that does not exist.
        ids = [api("POST", "/api/workflows", {"definition": "odds_change", "created_by": "carl",
                                              "data": {"market": 8 + i}})["id"] for i in range(3)]
        bulk = api("POST", "/api/workflows/bulk", {"action": "cancel", "ids": ids + ["wf_999999"],
                                                   "actor": "carl", "comment": "market closed"})
        for r in bulk["results"]:
            err = "" if r["ok"] else f" error={r['error']['code']}"
            say(f"  bulk {bulk['bulk_id']}: {r['id']} ok={r['ok']} status={r['status']}{err}")
        check(bulk["succeeded"] == 3 and bulk["failed"] == 1, "bulk cancel: 3 cancelled, 1 not found")

        # 6. The relay got every event, verified, the refused one retried.
        want = ["workflow.created", "workflow.approved", "workflow.updated", "workflow.approved",
                "workflow.updated", "workflow.completed"]
        wait_for(lambda: sorted(relay.events(wf["id"])) == sorted(want), 15,
                 f"relay verified {len(want)} deliveries for {wf['id']}")
        wait_for(lambda: all("workflow.cancelled" in relay.events(i) for i in ids), 15,
                 "relay verified workflow.cancelled for the 3 bulk-cancelled")
        check(relay.attempts[relay.refused_once] == 2 and relay.refused_once in relay.seen,
              f"{relay.refused_once} answered 503, retried and accepted under the same webhook-id")
        deliveries = api("GET", f"/api/webhooks/{hook['id']}/deliveries?limit=100")["deliveries"]
        retried = [d for d in deliveries if d["attempts"] == 2]
        check(len(retried) == 1 and retried[0]["status"] == "succeeded",
              "the delivery list shows it succeeded at attempt 2")
    finally:
        api("DELETE", f"/api/webhooks/{hook['id']}")


if __name__ == "__main__":
    main()
