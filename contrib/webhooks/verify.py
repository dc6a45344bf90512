#!/usr/bin/env python3
"""verify.py -- checks herald webhook deliveries (Standard Webhooks) on the
receiving side, with the Python standard library only.

As a module:

    from verify import verify, VerificationError
    payload = verify(secret, request_headers, raw_body)   # or raises

As a tiny receiver, for trying an endpoint out:

    python3 verify.py --port 8000 --secret whsec_...     (or WEBHOOK_SECRET=...)

It answers 200 to every POST whose signature verifies (400 otherwise), prints
one JSON line per verified delivery on stdout, and answers GET /events with
the list of verified deliveries so far.

The signature is v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>
where key is the base64-decoded part of the secret after "whsec_". The
webhook-signature header may carry several space-separated signatures (one per
secret during a rotation): one matching signature is enough."""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300        # seconds a webhook-timestamp may be off (replay protection)


class VerificationError(Exception):
    """The delivery is not authentic (or too old): answer 4xx and drop it."""


def _key(secret):
    """The HMAC key of a "whsec_<base64>" secret (a bare base64 one works too)."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    try:
        return base64.b64decode(secret, validate=True)
    except ValueError as e:
        raise VerificationError(f"invalid secret: {e}") from None


def sign(secret, msg_id, timestamp, body):
    """The v1 signature of body: "v1,<base64>"."""
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret, headers, body, tolerance=TOLERANCE, now=None):
    """Checks one delivery and returns its payload (the parsed JSON body).

    secret   the endpoint's secret ("whsec_..."), or a list of secrets (while
             you roll your own configuration over to a rotated one)
    headers  the request headers: any mapping or list of pairs; names are
             compared without regard to case
    body     the raw request body (bytes, or str), exactly as received: parse
             it only after it has been verified
    Raises VerificationError when a header is missing, the timestamp is more
    than tolerance seconds away from now, or no signature matches."""
    items = headers.items() if hasattr(headers, "items") else headers
    h = {str(k).lower(): str(v) for k, v in items}
    msg_id = h.get("webhook-id")
    timestamp = h.get("webhook-timestamp")
    signatures = h.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise VerificationError("invalid webhook-timestamp") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        raise VerificationError("webhook-timestamp too far from now")
    if isinstance(body, str):
        body = body.encode()
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [sign(s, msg_id, timestamp, body) for s in secrets]
    for sig in signatures.split():
        for want in expected:
            # Constant-time comparison, as for any MAC.
            if hmac.compare_digest(sig.encode(), want.encode()):
                return json.loads(body)
    raise VerificationError("no valid signature")


class Receiver(BaseHTTPRequestHandler):
    """POST: verify and acknowledge; GET /events: what was verified so far."""
    protocol_version = "HTTP/1.1"      # keep-alive, as herald reuses connections
    disable_nagle_algorithm = True

    def _answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            payload = verify(self.server.secret, self.headers, body)
        except VerificationError as e:
            print(f"rejected: {e}", file=sys.stderr, flush=True)
            self._answer(400, {"error": str(e)})
            return
        msg_id = self.headers["webhook-id"]
        with self.server.lock:
            # Deliveries are at least once: the same webhook-id may come again.
            duplicate = msg_id in self.server.seen
            self.server.seen.add(msg_id)
            event = {"webhook_id": msg_id, "duplicate": duplicate, "payload": payload}
            self.server.events.append(event)
            print(json.dumps(event), flush=True)
        self._answer(200, {"ok": True})

    def do_GET(self):
        if self.path != "/events":
            self._answer(404, {"error": "not found"})
            return
        with self.server.lock:
            self._answer(200, {"events": list(self.server.events)})

    def log_message(self, fmt, *args):
        pass


def serve(port, secret, host="127.0.0.1"):
    server = ThreadingHTTPServer((host, port), Receiver)
    server.daemon_threads = True
    server.secret = secret
    server.lock = threading.Lock()
    server.seen = set()
    server.events = []
    print(f"listening on http://{host}:{server.server_address[1]}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main():
    p = argparse.ArgumentParser(description="A receiver that verifies herald webhook signatures.")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"),
                   help="the endpoint's whsec_ secret (default: $WEBHOOK_SECRET)")
    args = p.parse_args()
    if not args.secret:
        p.error("--secret or WEBHOOK_SECRET is required")
    serve(args.port, args.secret, args.host)


if __name__ == "__main__":
    main()
