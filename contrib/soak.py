#!/usr/bin/python3
"""soak.py -- mixed load against a running heraldd (docs/reliability.md, "Soak").

Against the daemon of -c CONF (master --master), for --duration seconds: idle
WebSockets held by --slices `herald-bench conns` processes (replaced one after
the other after each worker kill, which restores the count and spreads it over
the workers again); publishes at --rate, every acknowledged (room, seq) kept;
--resumers clients that leave at random and resume with since {seq, epoch},
checking that every seq follows the last one seen; a kick every --kick-every s;
kill -9 of a worker every --kill-every s; the RSS of every herald process once
a minute. Then SIGTERM (--stop), every acknowledged publish looked up with
sqlite3, sanitizer logs read, a JSON summary printed (samples: WORKDIR/soak.json).
In a sanitizer build, herald's children run LeakSanitizer's check as they
stop, so --stop checks every process."""
import argparse, asyncio, collections, glob, http.client, json, os, random, re
import signal, subprocess, sys, threading, time
import requests
import websockets

def read_conf(path):
    """The server keys (before the first [section])."""
    text = open(path).read().split("\n[")[0]
    return {k.strip(): v.split(" #")[0].strip() for k, v in
            (l.split("=", 1) for l in text.splitlines() if "=" in l and l[:1] not in "#;")}


def herald_procs(master):
    """{pid: title} of the master and its live children, from /proc."""
    out = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{d}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
        except (OSError, ValueError):
            continue
        if master in (int(d), int(ppid)) and title.startswith("heraldd:") and state != "Z":
            out[int(d)] = title
    return out


def workers(master):
    return {int(m.group(1)): pid for pid, t in herald_procs(master).items()
            if (m := re.match(r"heraldd: worker (\d+)", t))}


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def live_heap_kb(pid):
    """Bytes malloc'ed and not freed in a sanitizer build (quarantine excluded)."""
    out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex",
                          "print (unsigned long)__sanitizer_get_current_allocated_bytes()"],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"^\$1 = (\d+)", out, re.M)
    return int(m.group(1)) // 1024 if m else None


class Soak:
    def __init__(self, a):
        self.a, self.conf = a, read_conf(a.config)
        self.api = f"http://{self.conf['admin_listen']}"
        self.auth = {"Authorization": f"Bearer {self.conf['api_key']}"}
        self.rooms = [f"soak:r{i}" for i in range(a.rooms)]
        self.stop, self.lock, self.t0 = threading.Event(), threading.Lock(), time.monotonic()
        self.c = collections.Counter()
        self.acked, self.epochs = collections.defaultdict(set), {}
        self.resumer_ids, self.samples, self.kills, self.slice_runs = {}, [], [], []

    def count(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def now(self):
        return round(time.monotonic() - self.t0, 1)

    # ---- idle connections: one herald-bench conns process per slice ---------------
    def start_slice(self, i):
        n = self.a.connections // self.a.slices + (i < self.a.connections % self.a.slices)
        log = os.path.join(self.a.workdir, f"bench-{i}-{len(self.slice_runs)}.log")
        cmd = [self.a.bench, "conns", "-c", self.a.config, "--connections", str(n),
               "--processes", "1", "--per-source", str(self.a.per_source), "--quiet",
               "--hold", str(self.a.duration + 900), "--timeout", "180",
               "--pids", ",".join(map(str, herald_procs(self.a.master)))]
        with open(log, "w") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        run = {"slice": i, "t": self.now()}
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and p.poll() is None and not self.stop.is_set():
            lines = [l for l in open(log) if l.startswith("{")]
            if lines:
                r = json.loads(lines[-1])
                run.update(connected=r["connected"], failed=r["failed"], took=self.now() - run["t"])
                break
            time.sleep(0.5)
        else:
            run["error"] = "stopped" if self.stop.is_set() else open(log).read()[-300:]
        self.slice_runs.append(run)
        return p

    def stop_slice(self, p):
        p.terminate()       # its child closes the connections and leaves with it
        p.wait(20)
        time.sleep(1)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # ---- publisher ------------------------------------------------------------------
    def publish(self, conn, room, i):
        body = json.dumps({"room": room, "event": "soak", "data": {"i": i}})
        conn.request("POST", "/api/publish", body, {**self.auth, "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            return self.count(f"publish_refused_{r.status}")
        j = json.loads(data)
        with self.lock:
            self.acked[room].add(j["seq"])
            if self.epochs.setdefault(room, j["epoch"]) != j["epoch"]:
                self.c["publish_epoch_changed"] += 1

    def publisher(self):
        host, port = self.conf["admin_listen"].rsplit(":", 1)
        conn, i, due = None, 0, time.monotonic()
        while not self.stop.wait(max(0, due - time.monotonic())):
            due = max(due + 1 / self.a.rate, time.monotonic() - 1)
            i += 1
            try:
                conn = conn or http.client.HTTPConnection(host, int(port), timeout=15)
                self.publish(conn, random.choice(self.rooms), i)
            except (OSError, http.client.HTTPException, ValueError):
                self.count("publish_unanswered")    # connection lost: outcome unknown
                if conn:
                    conn.close()
                conn = None
                self.stop.wait(0.2)

    # ---- resumers -------------------------------------------------------------------
    def check(self, mine, pos, m):
        t, room = m.get("type"), m.get("room")
        if t == "error":
            self.count(f"resumer_error_{m.get('code')}")
        if room not in mine:
            return
        if t == "subscribed":
            self.count("replayed", m.get("replayed") or 0)
            if m.get("recovered") is False:
                self.count("recovered_false")
            if room not in pos:
                pos[room] = [m["seq"], m["epoch"]]
            elif m["seq"] > pos[room][0]:
                self.count("subscribed_ahead")      # says more was delivered than we saw
        elif t == "event":
            seq, last = m["seq"], pos.get(room, [None])[0]
            if last is None:
                pos[room] = [seq, m["epoch"]]
            elif m["epoch"] != pos[room][1]:
                self.count("epoch_changed")
                pos[room] = [seq, m["epoch"]]
            else:
                if seq == last + 1:
                    self.count("events_checked")
                elif seq <= last:
                    self.count("duplicates")
                else:
                    self.count("gaps")
                    self.count("missing_seqs", seq - last - 1)
                pos[room][0] = max(last, seq)

    async def resumer(self, i):
        rng = random.Random(i)
        mine, pos, loop = rng.sample(self.rooms, 2), {}, asyncio.get_running_loop()
        while not self.stop.is_set():
            try:
                async with websockets.connect(f"ws://{self.conf['listen']}/ws", max_size=None,
                                              ping_interval=None, open_timeout=15,
                                              close_timeout=2) as ws:
                    self.resumer_ids[i] = json.loads(await asyncio.wait_for(ws.recv(), 15))["client_id"]
                    msg = {"type": "subscribe", "rooms": mine}
                    if pos:
                        msg["since"] = {r: {"seq": p[0], "epoch": p[1]} for r, p in pos.items()}
                        self.count("resumes")
                    await ws.send(json.dumps(msg))
                    until = loop.time() + rng.uniform(2, 40)
                    while not self.stop.is_set() and loop.time() < until:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), min(1, until - loop.time()))
                        except asyncio.TimeoutError:
                            continue
                        self.check(mine, pos, json.loads(raw))
                self.count("resumer_left")
            except websockets.ConnectionClosed as e:
                self.count(f"resumer_closed_{e.rcvd.code if e.rcvd else 'abnormal'}")
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                self.count("resumer_connect_failed")
            except Exception as e:      # reported, and the client goes on
                self.count(f"resumer_exception_{type(e).__name__}")
            self.resumer_ids.pop(i, None)
            await asyncio.sleep(rng.uniform(0, 2))

    async def resumers(self):
        tasks = [asyncio.create_task(self.resumer(i)) for i in range(self.a.resumers)]
        while not self.stop.is_set():
            await asyncio.sleep(0.5)
        await asyncio.wait(tasks, timeout=30)

    # ---- kicks, kills, samples ------------------------------------------------------
    def kicker(self):
        s = requests.Session()
        s.headers.update(self.auth)
        pool, fetched = [], -1e9
        while not self.stop.wait(self.a.kick_every):
            try:
                if time.monotonic() - fetched > 60:
                    r = s.get(self.api + "/api/connections", timeout=60)
                    pool, fetched = [c["id"] for c in r.json()["connections"]], time.monotonic()
                live = list(self.resumer_ids.values())
                cid = random.choice(live if live and random.random() < 0.5 else pool)
                r = s.delete(f"{self.api}/api/connections/{cid}", timeout=15)
                self.count("kicks_done" if r.status_code == 200 else f"kicks_{r.status_code}")
            except (requests.RequestException, ValueError, KeyError, IndexError):
                self.count("kick_errors")

    def chaos(self):
        spare = {int(s) for s in self.a.spare.split(",") if s}
        due = self.t0 + self.a.first_kill
        while not self.stop.wait(max(0, due - time.monotonic())):
            if due > self.t0 + self.a.duration - self.a.quiet_end:
                break           # no kill near the end: the last sample is taken in calm
            due += self.a.kill_every
            slot, pid = random.choice([(s, p) for s, p in sorted(workers(self.a.master).items())
                                       if s not in spare])
            os.kill(pid, signal.SIGKILL)
            kill, deadline = {"t": self.now(), "slot": slot, "pid": pid}, time.monotonic() + 30
            while time.monotonic() < deadline and workers(self.a.master).get(slot) in (None, pid):
                time.sleep(0.1)
            kill.update(new_pid=workers(self.a.master).get(slot), back_after=self.now() - kill["t"])
            self.kills.append(kill)
            for i in range(self.a.slices):
                if not self.stop.wait(2):
                    self.stop_slice(self.slices[i])
                    self.slices[i] = self.start_slice(i)

    def sample(self, minute):
        s = {"minute": minute, "t": self.now(), "resumers_open": len(self.resumer_ids),
             "procs": [{"pid": p, "title": t, "rss_kb": rss_kb(p)}
                       for p, t in sorted(herald_procs(self.a.master).items())]}
        if self.a.heap_gdb:
            for p in s["procs"]:
                p["heap_kb"] = live_heap_kb(p["pid"])
        try:
            st = requests.get(self.api + "/api/stats", headers=self.auth, timeout=30).json()
            s.update(connections=st["connections"], rooms_loaded=st.get("rooms_loaded"),
                     per_worker={w["pid"]: w["connections"] for w in st["workers"]})
        except (requests.RequestException, ValueError, KeyError):
            s["stats_error"] = True
        s["rss_total_kb"] = sum(p["rss_kb"] or 0 for p in s["procs"])
        self.samples.append(s)

    def sampler(self):
        for k in range(int(self.a.duration // 60) + 1):
            if self.stop.wait(max(0, self.t0 + 60 * k - time.monotonic())):
                return
            self.sample(k)
        self.stop.set()

    # ---- the run and its outcome ----------------------------------------------------
    def run(self):
        os.makedirs(self.a.workdir, exist_ok=True)
        host, port = self.conf["admin_listen"].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=15)
        for r in self.rooms:            # every room gets its epoch first
            self.publish(c, r, 0)
        c.close()
        self.slices = [self.start_slice(i) for i in range(self.a.slices)]
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.publisher, self.kicker, self.chaos, self.sampler)]
        for t in threads:
            t.start()
        asyncio.run(self.resumers())
        for t in threads:
            t.join(300)
        for p in self.slices:
            self.stop_slice(p)
        if self.a.stop:
            os.kill(self.a.master, signal.SIGTERM)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and herald_procs(self.a.master):
                time.sleep(0.5)
        return self.summary()

    def db_check(self):
        q = ("SELECT r.name, m.seq FROM messages m JOIN rooms r ON r.id = m.room_id "
             "WHERE r.name LIKE 'soak:%'")
        out = subprocess.run(["sqlite3", "-readonly", self.conf["database"], q], check=True,
                             capture_output=True, text=True, timeout=300).stdout
        stored = {(r, int(s)) for r, s in (l.rsplit("|", 1) for l in out.splitlines())}
        acked = {(r, s) for r, seqs in self.acked.items() for s in seqs}
        return {"acknowledged": len(acked), "stored": len(stored),
                "missing": sorted(acked - stored)[:20], "missing_count": len(acked - stored)}

    def memory(self, a, b):
        rows = []
        for p in a["procs"]:
            q = next(q for q in b["procs"] if q["title"] == p["title"])
            rows.append({"title": p["title"], "pid": [p["pid"], q["pid"]],
                         "rss_kb": [p["rss_kb"], q["rss_kb"]], "restarted": p["pid"] != q["pid"],
                         "heap_kb": [p.get("heap_kb"), q.get("heap_kb")]})
        kept = [r for r in rows if not r["restarted"]]
        return {"minutes": [a["minute"], b["minute"]], "processes": rows,
                "connections": [a.get("connections"), b.get("connections")],
                "long_lived_rss_kb": [sum(r["rss_kb"][i] for r in kept) for i in (0, 1)],
                "total_rss_kb": [a["rss_total_kb"], b["rss_total_kb"]]}

    def summary(self):
        by_minute = {s["minute"]: s for s in self.samples}
        log = self.conf.get("log_file")
        events = collections.Counter(re.findall(r"level=(\w+) .*?event=(\w+)",
                                                open(log).read() if log else ""))
        res = {"duration": self.a.duration, "connections": self.a.connections,
               "resumers": self.a.resumers, "rate": self.a.rate, "counters": dict(self.c),
               "kills": self.kills, "db": self.db_check(),
               "slices": {"runs": len(self.slice_runs),
                          "failed": sum(r.get("failed", 0) for r in self.slice_runs),
                          "errors": [r for r in self.slice_runs if "error" in r]},
               "log_events": {f"{l} {e}": n for (l, e), n in events.items()}}
        if self.a.base_minute in by_minute:
            res["memory"] = self.memory(by_minute[self.a.base_minute], self.samples[-1])
        if self.a.asan_logs:    # with LSAN_OPTIONS=log_threads=1 each leak check leaves a file
            logs = {f: open(f, errors="replace").read() for f in sorted(glob.glob(self.a.asan_logs))}
            res["sanitizer_logs"] = len(logs)
            res["sanitizer_reports"] = {f: t[t.find("ERROR"):][:2000] for f, t in logs.items()
                                        if re.search(r"ERROR: |runtime error|SUMMARY: ", t)}
        c = self.c
        res["ok"] = not (res["db"]["missing_count"] or c["gaps"] or c["duplicates"] or
                         c["recovered_false"] or c["epoch_changed"] or res.get("sanitizer_reports"))
        with open(os.path.join(self.a.workdir, "soak.json"), "w") as f:
            json.dump({**res, "samples": self.samples, "slice_runs": self.slice_runs}, f, indent=1)
        return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-c", dest="config", help="heraldd's configuration")
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "herald-bench")
    for name, kind, default, what in [
            ("master", int, None, "pid of its master"), ("duration", float, 1800, "seconds"),
            ("connections", int, 50000, "idle WebSockets"),
            ("slices", int, 4, "herald-bench processes holding them"),
            ("per-source", int, 3125, "connections per source address 127.0.0.x"),
            ("rooms", int, 20, "rooms soak:r0..."), ("rate", float, 200, "publishes per second"),
            ("resumers", int, 250, "resuming clients"), ("kick-every", float, 3, "seconds"),
            ("kill-every", float, 120, "seconds"), ("first-kill", float, 65, "seconds"),
            ("quiet-end", float, 150, "no kill in the last S seconds"),
            ("spare", str, "1", "worker slots never killed (comma list)"),
            ("base-minute", int, 5, "memory compared from this minute to the end"),
            ("bench", str, bench, "herald-bench"), ("workdir", str, "soak-out", "output"),
            ("asan-logs", str, None, "glob of sanitizer log files")]:
        ap.add_argument("--" + name, type=kind, default=default, help=what)
    ap.add_argument("--heap-gdb", action="store_true", help="read a sanitizer build's live heap")
    ap.add_argument("--stop", action="store_true", help="SIGTERM the master at the end")
    a = ap.parse_args()
    if not a.config or not a.master:
        ap.error("-c and --master are needed")
    res = Soak(a).run()
    json.dump(res, sys.stdout, indent=1)
    print()
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
