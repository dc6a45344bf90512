#!/usr/bin/env python3
"""ecommerce backend: checks the probes and who is connected, then an order
of alice's goes through created / paid / shipped (to order:alice and admin in
one publish each) while the stock of the product runs low.

    python3 contrib/examples/ecommerce/backend.py   (HERALD_API_URL, HERALD_API_KEY)
"""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from examplelib import API_URL, api, check, publish, say, time_limit  # noqa: E402


def probe(path):
    """The health endpoints need no API key (a load balancer calls them)."""
    with urllib.request.urlopen(API_URL + path, timeout=5) as r:
        return r.status, json.load(r)


def main():
    time_limit(20)
    for path in ("/health/live", "/health/ready", "/health"):
        status, body = probe(path)
        say(f"GET {path}: {status} {json.dumps(body)}")
        check(status == 200, f"{path} answers 200")

    # Connections reach the stats within moments of their welcome.
    deadline = time.time() + 5
    while True:
        stats = api("GET", "/api/stats")
        if stats["user_connections"].get("alice") == 2 and stats["unique_users"] == 4 \
                or time.time() > deadline:
            break
        time.sleep(0.05)
    say(f"stats: connections={stats['connections']} unique_users={stats['unique_users']} "
        f"anonymous={stats['anonymous']} user_connections={json.dumps(stats['user_connections'])}")
    check(stats["user_connections"].get("alice") == 2, "alice is connected from 2 devices")
    check(stats["unique_users"] == 4, "unique users: alice, bob, sam, ops")

    order = {"order": "A-1001", "customer": "alice", "total": "59.90",
             "items": [{"sku": "sku-42", "qty": 2}]}
    for event, extra in [("order.created", {}), ("order.paid", {"method": "card"}),
                         ("order.shipped", {"carrier": "DHL", "tracking": "JD0123"})]:
        # One call, one message per room: the customer's devices and the back office.
        r = publish(["order:alice", "admin"], event, {**order, **extra},
                    idempotency_key=f"A-1001:{event}")
        say(f"{event} -> " + ", ".join(f"{x['room']}#{x['seq']}" for x in r["results"]))
        if event == "order.created":
            for stock in (5, 3):
                r = publish("inventory:sku-42", "stock", {"sku": "sku-42", "stock": stock})
                say(f"inventory:sku-42 stock {stock} -> seq {r['seq']}")
            r = publish("admin", "inventory.low", {"sku": "sku-42", "stock": 3, "threshold": 5})
            say(f"admin inventory.low -> seq {r['seq']}")
    # A retried call (same idempotency_key) is not delivered twice.
    r = publish(["order:alice", "admin"], "order.shipped", order, idempotency_key="A-1001:order.shipped")
    check(all(x.get("duplicate") for x in r["results"]), "a retried publish is recognised as a duplicate")


if __name__ == "__main__":
    main()
