// sio_driver.js -- drives real socket.io-client sockets for the integration
// tests: commands arrive as JSON lines on stdin, everything the sockets see
// leaves as JSON lines on stdout. Buffers travel as {"$bin": base64}.
"use strict";
const path = require("path");
const readline = require("readline");
const { io } = require(path.join(__dirname, "..", "node", "node_modules", "socket.io-client"));

const sockets = new Map();      // name -> socket
const groups = new Map();       // prefix -> {sockets, counts}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function encode(v) {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v))
    return { $bin: Buffer.from(v instanceof ArrayBuffer ? new Uint8Array(v) : v).toString("base64") };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = encode(v[k]);
    return o;
  }
  return v;
}

function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    const o = {};
    for (const k of Object.keys(v)) o[k] = decode(v[k]);
    return o;
  }
  return v;
}

function watch(name, s, quiet) {
  s.on("connect", () => out({ ev: "connect", name, id: s.id, recovered: s.recovered,
                              transport: s.io.engine.transport.name, engine: s.io.engine.id }));
  s.on("connect_error", (e) => out({ ev: "connect_error", name, message: e.message, data: e.data }));
  s.on("disconnect", (reason) => out({ ev: "disconnect", name, reason }));
  if (!quiet)
    s.onAny((event, ...args) => out({ ev: "event", name, event, args: encode(args) }));
}

function handle(c) {
  switch (c.cmd) {
  case "connect": {
    // share: another socket of the same Manager (one Engine.IO connection)
    // on namespace nsp; else a new Manager, on url + nsp
    if (c.share) {
      const s = sockets.get(c.share).io.socket(c.nsp, c.opts || {});
      sockets.set(c.name, s);
      watch(c.name, s, false);
      break;
    }
    const s = io(c.url + (c.nsp || ""), Object.assign({ forceNew: true, reconnectionDelay: 100,
                                                       reconnectionDelayMax: 300 }, c.opts || {}));
    sockets.set(c.name, s);
    watch(c.name, s, false);
    s.io.on("open", () => {
      const e = s.io.engine;
      out({ ev: "engine_open", name: c.name, transport: e.transport.name });
      e.on("upgrade", (t) => out({ ev: "upgrade", name: c.name, transport: t.name }));
    });
    break;
  }
  case "emit": {
    const s = sockets.get(c.name);
    const args = decode(c.args || []);
    if (c.ack)
      s.timeout(c.timeout || 5000).emit(c.event, ...args, (err, ...res) =>
        out({ ev: "ack", name: c.name, tag: c.tag, err: err ? err.message : null, args: encode(res) }));
    else
      s.emit(c.event, ...args);
    break;
  }
  case "drop": {
    // a lost connection: the engine closes, the client reconnects by itself
    const s = sockets.get(c.name);
    s.io.engine.close();
    break;
  }
  case "pause": {
    // the client stops reconnecting until "resume"
    const s = sockets.get(c.name);
    s.io.reconnection(false);
    s.io.engine.close();
    break;
  }
  case "noreconnect":
    sockets.get(c.name).io.reconnection(false);
    break;
  case "resume": {
    // url: reconnect to another server (another node of a cluster)
    const s = sockets.get(c.name);
    if (c.auth) s.auth = c.auth;
    if (c.url) s.io.uri = c.url;
    s.io.reconnection(true);
    s.connect();
    break;
  }
  case "disconnect":
    sockets.get(c.name).disconnect();
    break;
  case "state": {
    const s = sockets.get(c.name);
    out({ ev: "state", name: c.name, id: s.id, connected: s.connected, recovered: s.recovered,
          pid: s._pid, offset: s._lastOffset, transport: s.io.engine ? s.io.engine.transport.name : null });
    break;
  }
  case "many": {
    const g = { sockets: [], counts: [], connected: 0, acked: 0, last: [] };
    groups.set(c.prefix, g);
    for (let i = 0; i < c.count; i++) {
      const s = io(c.url, Object.assign({ forceNew: true }, c.opts || {}));
      g.sockets.push(s);
      g.counts.push(0);
      g.last.push(0);
      s.on("connect", () => {
        s.emit("subscribe", { room: c.room }, () => {
          g.acked++;
          if (g.acked === c.count) out({ ev: "many_ready", prefix: c.prefix, count: c.count });
        });
      });
      s.on(c.event, (payload) => {
        if (payload.seq !== g.last[i] + 1 && g.last[i] !== 0) g.gap = true;
        g.last[i] = payload.seq;
        g.counts[i]++;
      });
    }
    break;
  }
  case "count": {
    const g = groups.get(c.prefix);
    const total = g.counts.reduce((a, b) => a + b, 0);
    out({ ev: "count", prefix: c.prefix, total, min: Math.min(...g.counts),
          max: Math.max(...g.counts), gap: !!g.gap });
    break;
  }
  case "close_all":
    for (const s of sockets.values()) s.disconnect();
    for (const g of groups.values()) for (const s of g.sockets) s.disconnect();
    out({ ev: "closed" });
    setTimeout(() => process.exit(0), 50);
    break;
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  try {
    handle(JSON.parse(line));
  } catch (e) {
    out({ ev: "driver_error", message: String(e && e.stack || e) });
  }
});
process.stdin.on("end", () => process.exit(0));
