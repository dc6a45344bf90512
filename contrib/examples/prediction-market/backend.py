#!/usr/bin/env python3
"""prediction-market backend: a price move in market:7, a new market in
creator:alice, an announcement in global, and two notifications for bob,
stored with a read flag. Then it watches bob read them.

    python3 contrib/examples/prediction-market/backend.py   (HERALD_API_URL, HERALD_API_KEY)
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from examplelib import api, check, publish, say, time_limit  # noqa: E402


def main():
    time_limit(25)
    r = publish("market:7", "price", {"market": 7, "yes": 0.62, "no": 0.38, "volume": 15210})
    say(f"market:7 price -> seq {r['seq']}")
    r = publish("creator:alice", "market.created",
                {"market": 8, "title": "Will it snow in Paris on 1 March?", "creator": "alice"})
    say(f"creator:alice market.created -> seq {r['seq']}")
    r = api("POST", "/api/broadcast", {"event": "announcement",
                                       "data": {"text": "Markets close at midnight UTC"}})
    say(f"global announcement -> seq {r['seq']}")

    # Stored per user, delivered as event "notification" in user:{id}.
    # "users": [...] sends the same one to many.
    for n in [{"type": "market.resolved", "title": "Market 7 resolved: YES",
               "message": "You won 12.50", "data": {"market": 7, "payout": "12.50"},
               "action_url": "/markets/7"},
              {"type": "creator.new_market", "title": "alice opened a market",
               "message": "Will it snow in Paris on 1 March?", "data": {"market": 8},
               "action_url": "/markets/8"}]:
        r = api("POST", "/api/notifications", {"user": "bob", **n})
        say(f"notification {r['notifications'][0]['id']} for bob: {n['title']}")

    # bob reads one on his phone, then all (client.mjs); the list shows it.
    deadline = time.time() + 15
    while True:
        page = api("GET", "/api/users/bob/notifications?limit=10")
        if page["unread"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    for n in page["notifications"][:2]:
        say(f"  {n['id']} {n['type']}: read_at={n['read_at']}")
    check(page["unread"] == 0 and all(n["read_at"] for n in page["notifications"][:2]),
          "GET /api/users/bob/notifications: both read, unread 0")


if __name__ == "__main__":
    main()
