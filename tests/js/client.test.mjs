/* client.test.mjs -- the JavaScript client (contrib/js) in Node against the
 * real daemon started by tests/integration/test_js_client.py: live events,
 * resume after kicks and kill -9, recovered: false, token refresh. Each
 * handler must see a contiguous, duplicate-free sequence. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

import { connect, HeraldClient, HeraldError } from "../../contrib/js/herald.mjs";
import {
	ROOT, WebSocket, api, contiguous, env, publishMany, recorder, sleep, token, waitFor, workerOf,
} from "./lib.mjs";

const FAST = { min: 20, max: 300 };
const uniq = (p) => `${p}${process.pid}x${Date.now() % 100000}`;

function client(opts = {}) {
	const c = connect({ url: env.wsUrl, WebSocket, backoff: FAST, ...opts });
	c.states = [];
	c.errors = [];
	c.on("state", (s) => c.states.push(s));
	c.on("error", (e) => c.errors.push(e));
	return c;
}

const connected = (c, n = 1) =>
	waitFor(() => c.states.filter((s) => s.state === "connected").length >= n, 10000,
		() => `${n} connected states, got ${JSON.stringify(c.states)}`);

test("live events reach the handler in order and publish resolves", async () => {
	const user = uniq("u");
	const c = client({ getToken: () => token(user) });
	try {
		const room = uniq("race:live");
		const rec = recorder();
		const all = [];
		c.on("event", (ev) => ev.room === room && all.push(ev.seq));
		const sub = c.subscribe(room, rec);
		const info = await sub.ready;
		assert.equal(info.room, room);
		assert.equal(c.user, user);
		const acked = await publishMany(room, 20);
		await waitFor(() => rec.seen.length >= 20, 10000, () => `20 events, got ${rec.seqs()}`);
		assert.deepEqual(rec.seqs(), acked);
		assert.deepEqual(all, acked);
		assert.deepEqual(rec.errors, []);
		assert.deepEqual(rec.seen[0].data, { i: 0 });
		assert.match(rec.seen[0].ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

		/* A second handler on the same room shares the server subscription. */
		const rec2 = recorder();
		const sub2 = c.subscribe(room, rec2);
		await sub2.ready;
		await publishMany(room, 1);
		await waitFor(() => rec2.seen.length === 1 && rec.seen.length === 21);
		sub2.unsubscribe();

		/* publish from the client where the namespace admits it */
		const chat = uniq("chat:room");
		const crec = recorder();
		await c.subscribe(chat, crec).ready;
		const p = await c.publish(chat, "msg", { text: "hi" });
		assert.equal(p.room, chat);
		assert.equal(p.seq, 1);
		await waitFor(() => crec.seen.length === 1);
		assert.deepEqual(crec.seen[0].data, { text: "hi" });
		/* and the server's refusal rejects with its code */
		await assert.rejects(c.publish(room, "x", {}), (e) => e instanceof HeraldError && e.code === "forbidden");
		const pong = await c.ping();
		assert.equal(pong.type, "pong");
		await sub.unsubscribe();
	} finally {
		c.close();
	}
});

test("notifications arrive and read marks them", async () => {
	const user = uniq("n");
	const c = client({ token: token(user) });
	try {
		await connected(c);
		const got = [];
		c.on("notification", (n) => got.push(n));
		const r = await api("POST", "/api/notifications", { user, type: "order", title: "Shipped" });
		assert.equal(r.status, 200, r.text);
		await waitFor(() => got.length === 1, 10000, "a notification");
		assert.equal(got[0].title, "Shipped");
		assert.equal(got[0].type, "order");
		const read = await c.read({ all: true });
		assert.equal(read.count, 1);
	} finally {
		c.close();
	}
});

/* Kicks (close 4008) and kill -9 of the worker holding the connection,
 * while a publisher runs: the handler sees every seq exactly once. */
test("resume after kicks and kill -9 of the worker, nothing lost or doubled", async () => {
	const room = uniq("race:resume");
	const c = client({ getToken: () => token(uniq("r")) });
	try {
		const rec = recorder();
		await c.subscribe(room, rec).ready;
		const publisher = publishMany(room, 150, 4);
		await waitFor(() => rec.seen.length >= 20, 10000, "20 events");
		let r = await api("DELETE", `/api/connections/${c.clientId}`);
		assert.equal(r.status, 200, r.text);
		await connected(c, 2);
		await waitFor(() => rec.seen.length >= 60, 10000, "60 events");
		const slot = await workerOf(c.clientId);
		process.kill(env.workers[slot], "SIGKILL");
		await connected(c, 3);
		const acked = await publisher;
		await waitFor(() => rec.seen.length >= acked.length, 15000,
			() => `${acked.length} events, got ${rec.seen.length}`);
		await sleep(100);
		assert.deepEqual(rec.errors, []);
		assert.ok(contiguous(rec.seqs(), 1, 150), `seqs ${rec.seqs()}`);
		const downs = c.states.filter((s) => s.state === "disconnected");
		assert.ok(downs.some((s) => s.code === 4008), JSON.stringify(downs));
		assert.ok(downs.every((s) => s.willReconnect), JSON.stringify(downs));
	} finally {
		c.close();
	}
});

test("resume across kill -9 of the hub while publishing", async () => {
	const room = uniq("race:hub");
	const c = client({ getToken: () => token(uniq("h")) });
	try {
		const rec = recorder();
		await c.subscribe(room, rec).ready;
		const publisher = publishMany(room, 80, 5);
		await waitFor(() => rec.seen.length >= 20, 10000, "20 events");
		process.kill(env.hubPid, "SIGKILL");
		const acked = await publisher;
		const last = acked[acked.length - 1];
		await waitFor(() => rec.seen.length && rec.seen[rec.seen.length - 1].seq >= last, 20000,
			() => `seq ${last}, got ${rec.seqs().slice(-5)}`);
		assert.deepEqual(rec.errors, []);
		/* every acknowledged seq, and nothing else, with no gap */
		assert.ok(contiguous(rec.seqs(), 1, last), `seqs ${rec.seqs()}`);
		for (const s of acked)
			assert.ok(rec.seqs().includes(s));
	} finally {
		c.close();
	}
});

test("a subscribe answered unavailable while the hub is away is asked again", async () => {
	const room = uniq("race:away");
	const c = client({ getToken: () => token(uniq("a")) });
	try {
		await connected(c);
		const rec = recorder();
		let sub;
		/* A stopped master cannot restart the hub: it stays away meanwhile. */
		process.kill(env.masterPid, "SIGSTOP");
		try {
			process.kill(env.hubPid, "SIGKILL");
			await sleep(300);
			sub = c.subscribe(room, rec);
			await sleep(500);
		} finally {
			process.kill(env.masterPid, "SIGCONT");
		}
		await sub.ready;
		await publishMany(room, 5);
		await waitFor(() => rec.seen.length >= 5, 10000, "5 events");
		assert.ok(contiguous(rec.seqs(), 1, 5), `seqs ${rec.seqs()}`);
		assert.deepEqual(c.errors.map((e) => e.code), []);
	} finally {
		c.close();
	}
});

/* A gate in front of ws: while shut, connections go to a closed port. */
function gatedWebSocket() {
	const gate = { open: true };
	class Gated extends WebSocket {
		constructor(url, proto) {
			super(gate.open ? url : "ws://127.0.0.1:1/ws", proto);
		}
	}
	gate.WebSocket = Gated;
	return gate;
}

test("a room that cannot be recovered says so, then goes on in order", async () => {
	const room = uniq("small:gone");  /* history_size = 5 */
	const gate = gatedWebSocket();
	const c = client({ WebSocket: gate.WebSocket });
	try {
		const rec = recorder();
		const sub = c.subscribe(room, rec);
		const unrec = [];
		sub.on("unrecovered", (i) => unrec.push(i));
		const global = [];
		c.on("unrecovered", (i) => global.push(i));
		await sub.ready;
		await publishMany(room, 3);
		await waitFor(() => rec.seen.length === 3);
		gate.open = false;
		await api("DELETE", `/api/connections/${c.clientId}`);
		await waitFor(() => c.state === "disconnected");
		await publishMany(room, 20);
		/* pruning runs in the hub after the commits: wait for it */
		await waitFor(async () => (await api("GET", `/api/rooms/${room}/history`)).body.first_seq > 4,
			10000, "pruning");
		gate.open = true;
		await waitFor(() => unrec.length === 1, 10000, () => `unrecovered, states ${JSON.stringify(c.states.slice(-3))}`);
		assert.equal(global.length, 1);
		assert.equal(unrec[0].recovered, false);
		assert.equal(unrec[0].room, room);
		await publishMany(room, 2);
		await waitFor(() => rec.seen.length && rec.seen[rec.seen.length - 1].seq === 25);
		assert.deepEqual(rec.errors, []);
		const seqs = rec.seqs();
		assert.deepEqual(seqs.slice(0, 3), [1, 2, 3]);
		assert.deepEqual(seqs.slice(-2), [24, 25]);
		assert.equal(new Set(seqs).size, seqs.length);
	} finally {
		c.close();
	}
});

test("getToken is called again after close 4003 and the rooms resume", async () => {
	const user = uniq("t");
	let calls = 0;
	const c = client({
		/* Short tokens; the refresh after token_expired is slower than the
		 * server's grace, so the server closes with 4003 first. */
		getToken: async () => {
			calls++;
			if (calls > 1 && c.state === "connected")
				await sleep(2500);
			return token(user, calls === 1 ? 2 : 3600);
		},
	});
	try {
		const room = uniq("race:tok");
		const rec = recorder();
		await c.subscribe(room, rec).ready;
		await publishMany(room, 5);
		await waitFor(() => c.states.some((s) => s.code === 4003), 10000,
			() => `close 4003, states ${JSON.stringify(c.states)}`);
		await publishMany(room, 5);
		await connected(c, 2);
		await waitFor(() => rec.seen.length === 10, 10000, () => `10 events, got ${rec.seqs()}`);
		assert.ok(contiguous(rec.seqs(), 1, 10), `${rec.seqs()}`);
		assert.ok(calls >= 2);
	} finally {
		c.close();
	}
});

test("token_expired is answered with a fresh token without reconnecting", async () => {
	const user = uniq("f");
	let calls = 0;
	const c = client({ getToken: () => token(user, ++calls === 1 ? 2 : 3600) });
	try {
		await connected(c);
		const id = c.clientId;
		await waitFor(() => calls >= 2, 10000, "a refresh");
		await sleep(2500);   /* past the grace: still the same connection */
		assert.equal(c.clientId, id);
		assert.equal(c.states.filter((s) => s.state === "disconnected").length, 0);
		const r = await c.ping();
		assert.equal(r.type, "pong");
	} finally {
		c.close();
	}
});

test("auth_failed asks getToken again", async () => {
	let calls = 0;
	const c = client({
		getToken: () => (++calls === 1 ? token("bad", 3600, {}, "wrong-secret") : token(uniq("g"))),
	});
	try {
		await connected(c);
		assert.ok(calls >= 2);
		assert.ok(c.errors.some((e) => e.code === "auth_failed"));
		assert.ok(c.states.some((s) => s.state === "disconnected" && s.reason === "auth_failed"));
	} finally {
		c.close();
	}
});

/* ---- without the daemon: a scripted server ------------------------------------ */

/* A fake WebSocket whose server side the test scripts. */
function fakeSocket() {
	const sockets = [];
	class Fake {
		constructor(url, proto) {
			this.url = url;
			this.proto = proto;
			this.readyState = 0;
			this.sent = [];
			sockets.push(this);
			setTimeout(() => {
				this.readyState = 1;
				this.onopen && this.onopen({});
			}, 0);
		}
		send(s) { this.sent.push(JSON.parse(s)); }
		close(code) {
			this.readyState = 3;
			setTimeout(() => this.onclose && this.onclose({ code: code || 1000, reason: "" }), 0);
		}
		serve(msg) { this.onmessage({ data: JSON.stringify(msg) }); }
		drop(code) {
			this.readyState = 3;
			this.onclose({ code, reason: "test" });
		}
	}
	return { Fake, sockets };
}

test("duplicates and stale seqs from the server never reach a handler", async () => {
	const { Fake, sockets } = fakeSocket();
	const c = new HeraldClient({ url: "ws://fake/ws", WebSocket: Fake, backoff: { min: 1, max: 5 } });
	c.open();
	await waitFor(() => sockets.length === 1 && sockets[0].readyState === 1);
	const s = sockets[0];
	s.serve({ type: "welcome", client_id: "1", user: null, rooms: ["global"], heartbeat: 25, unread: 0 });
	const rec = recorder();
	c.subscribe("race:1", rec);
	const sub = s.sent.find((m) => m.type === "subscribe");
	assert.equal(sub.room, "race:1");
	assert.equal(sub.since, undefined);
	s.serve({ type: "subscribed", id: sub.id, room: "race:1", seq: 4, epoch: "e1", recovered: true, replayed: 0 });
	const ev = (seq, epoch = "e1") => ({ type: "event", room: "race:1", seq, epoch, event: "x", data: seq, ts: "" });
	for (const q of [5, 6, 6, 5, 7, 4, 8])
		s.serve(ev(q));
	assert.deepEqual(rec.seqs(), [5, 6, 7, 8]);
	/* reconnect: the room resumes from seq 8 of epoch e1 */
	s.drop(1006);
	await waitFor(() => sockets.length === 2 && sockets[1].readyState === 1);
	const s2 = sockets[1];
	s2.serve({ type: "welcome", client_id: "2", user: null, rooms: ["global"], heartbeat: 25, unread: 0 });
	const re = s2.sent.find((m) => m.type === "subscribe" && m.room === "race:1");
	assert.deepEqual(re.since, { seq: 8, epoch: "e1" });
	for (const q of [7, 8, 9])
		s2.serve(ev(q));
	s2.serve({ type: "subscribed", id: re.id, room: "race:1", seq: 9, epoch: "e1", recovered: true, replayed: 1 });
	/* a new epoch (the room's history was reset) starts over */
	s2.serve(ev(1, "e2"));
	s2.serve(ev(1, "e2"));
	s2.serve(ev(2, "e2"));
	assert.deepEqual(rec.seqs(), [5, 6, 7, 8, 9, 1, 2]);
	assert.deepEqual(rec.errors, []);
	c.close();
	assert.equal(c.state, "disconnected");
});

test("backoff is full jitter within the configured bounds", async () => {
	const { Fake, sockets } = fakeSocket();
	const c = new HeraldClient({ url: "ws://fake/ws", WebSocket: Fake, backoff: { min: 10, max: 40 } });
	const delays = [];
	c.on("state", (s) => s.state === "disconnected" && s.willReconnect && delays.push(s.delay));
	c.open();
	for (let i = 0; i < 8; i++) {
		await waitFor(() => sockets.length === i + 1 && sockets[i].readyState === 1);
		sockets[i].drop(1006);
	}
	c.close();
	assert.equal(delays.length, 8);
	const caps = [10, 20, 40, 40, 40, 40, 40, 40];
	delays.forEach((d, i) => assert.ok(d >= 0 && d <= caps[i], `delay ${i} = ${d}`));
});

test("the classic build exposes the same client", () => {
	const require = createRequire(import.meta.url);
	const Herald = require(process.env.HERALD_JS_CLASSIC || join(ROOT, "contrib", "js", "herald.js"));
	assert.equal(typeof Herald.connect, "function");
	assert.equal(typeof Herald.HeraldClient, "function");
	const c = new Herald.HeraldClient({ url: "ws://x/ws", WebSocket: class {} });
	assert.equal(c.state, "idle");
});
