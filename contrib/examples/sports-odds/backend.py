#!/usr/bin/env python3
"""sports-odds backend: the odds feed publishes each update once to every
room its filters match (one multi-room publish), then uses the management
endpoints: status, rooms, connections, a test broadcast.

    python3 contrib/examples/sports-odds/backend.py   (HERALD_API_URL, HERALD_API_KEY)
"""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from examplelib import API_URL, api, check, publish, say, time_limit  # noqa: E402


def rooms_for(update):
    """Every room whose subscribers want this update: the old server's
    per-client filter check, done once at publish time."""
    return [f"odds:{update['sport']}", f"odds:{update['sport']}.{update['league']}",
            f"match:{update['match']}"]


def main():
    time_limit(20)
    health = json.load(urllib.request.urlopen(API_URL + "/health", timeout=5))
    check(health["status"] == "ok", f"GET /health: {health}")

    updates = [
        {"update": 1, "sport": "football", "league": "epl", "match": 123,
         "prices": {"home": 1.9, "draw": 3.4, "away": 4.2}},
        {"update": 2, "sport": "football", "league": "laliga", "match": 200,
         "prices": {"home": 2.1, "draw": 3.1, "away": 3.6}},
        {"update": 3, "sport": "tennis", "league": "atp", "match": 300,
         "prices": {"p1": 1.5, "p2": 2.6}},
    ]
    for u in updates:
        r = publish(rooms_for(u), "odds", u)
        say(f"update {u['update']} -> " + ", ".join(f"{x['room']}#{x['seq']}" for x in r["results"]))

    stats = api("GET", "/api/stats")
    say(f"stats: connections={stats['connections']} unique_users={stats['unique_users']} "
        f"published={stats['messages']['published']} rooms={stats['rooms']}")
    check(stats["unique_users"] >= 1, "GET /api/stats counts pat")
    rooms = api("GET", "/api/rooms?prefix=odds:")["rooms"]
    for r in rooms:
        say(f"room {r['room']}: seq {r['seq']}, {r['subscribers']} subscribers")
    watched = {r["room"]: r["subscribers"] for r in rooms}
    check(watched.get("odds:football.epl", 0) >= 1 and watched.get("odds:tennis", 0) == 0,
          "GET /api/rooms: odds:football.epl watched, odds:tennis not")
    deadline = time.time() + 5
    while True:
        conns = api("GET", "/api/connections?user=pat")["connections"]
        if any("match:200" in c["rooms"] for c in conns) or time.time() > deadline:
            break
        time.sleep(0.05)
    for c in conns:
        say(f"connection {c['id']}: user {c['user']} on worker {c['worker']}, rooms {c['rooms']}")
    check(any("match:200" in c["rooms"] for c in conns), "GET /api/connections?user=pat")
    r = api("POST", "/api/broadcast", {"event": "test", "data": {"hello": "from the backend"}})
    check(r["room"] == "global", f"POST /api/broadcast: global#{r['seq']}")


if __name__ == "__main__":
    main()
