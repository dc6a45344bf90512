#!/usr/bin/env python3
"""race-odds backend: feeds odds for two races every 50 ms for 3 s (far more
than a browser wants), then posts each race's status. herald lets through at
most one odds update a second per race, always the newest.

A publish inside a race's window is held: herald answers it when a newer one
replaces it ({"seq": null, "superseded": true}) or when the window ends (its
seq). A feed that waits for each answer before the next publish is thus paced
at one a second; this one publishes from a pool and does not wait.

    python3 contrib/examples/race-odds/backend.py   (HERALD_API_URL, HERALD_API_KEY)
"""
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from examplelib import api, check, publish, say, time_limit  # noqa: E402

RACES = ["race:1", "race:2"]


def main():
    time_limit(20)
    pending = []
    tick = 0
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        while time.monotonic() - start < 3.0:
            tick += 1
            for n, room in enumerate(RACES):
                odds = {"tick": tick, "runners": {"h1": round(2.0 + 0.01 * tick + n, 2),
                                                  "h2": round(5.0 - 0.01 * tick, 2)}}
                pending.append(pool.submit(publish, room, "odds", odds))
            time.sleep(0.05)
        answers = [f.result() for f in pending]
    superseded = sum(1 for r in answers if r.get("superseded"))
    stored = len(answers) - superseded
    # Every publish has been answered, so the last tick is out. The race is
    # off (started): status goes to the namespace that is not throttled.
    for room in RACES:
        publish("raceinfo:" + room.split(":")[1], "status", {"status": "off", "last_tick": tick})
    say(f"published {tick} ticks per race: {stored} stored and delivered, {superseded} superseded")
    check(superseded > stored, "most publishes were coalesced away")
    # History keeps only what was delivered: about one per second.
    for room in RACES:
        h = api("GET", f"/api/rooms/{room}/history?limit=100")
        ticks = [m["data"]["tick"] for m in h["messages"]]
        say(f"{room} history: ticks {ticks}")
        check(ticks and ticks[-1] == tick and len(ticks) <= 5,
              f"{room} stored {len(ticks)} updates, the last one tick {tick}")


if __name__ == "__main__":
    main()
