/* lib.mjs -- helpers of the JavaScript client's tests: the daemon the pytest
 * harness started (from the environment), tokens, the API, bounded waits. */
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, "..", "..");
const require = createRequire(join(ROOT, "tests", "node", "package.json"));

/* The npm ws package (tests/node/node_modules, installed by contrib/setup.sh). */
export const WebSocket = require("ws");
export const requireTestModule = (name) => require(name);

export const env = {
	wsUrl: process.env.HERALD_WS_URL,
	adminUrl: process.env.HERALD_ADMIN_URL,
	apiKey: process.env.HERALD_API_KEY || "test-api-key",
	jwtSecret: process.env.HERALD_JWT_SECRET || "test-jwt-secret",
	workers: JSON.parse(process.env.HERALD_WORKER_PIDS || "{}"),
	hubPid: Number(process.env.HERALD_HUB_PID || 0),
	masterPid: Number(process.env.HERALD_MASTER_PID || 0),
};

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/* An HS256 JWT for sub, valid ttl seconds (independent of herald's code). */
export function token(sub, ttl = 3600, claims = {}, secret = env.jwtSecret) {
	const now = Math.floor(Date.now() / 1000);
	const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
	const body = b64url(JSON.stringify({ sub, iat: now, exp: now + ttl, ...claims }));
	const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest();
	return `${head}.${body}.${b64url(sig)}`;
}

/* Calls the HTTP API; returns {status, body}. Never throws on HTTP errors. */
export async function api(method, path, body) {
	const res = await fetch(env.adminUrl + path, {
		method,
		headers: { Authorization: `Bearer ${env.apiKey}`, "Content-Type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
		signal: AbortSignal.timeout(10000),
	});
	const text = await res.text();
	let json = null;
	try {
		json = JSON.parse(text);
	} catch (e) { /* not JSON */ }
	return { status: res.status, body: json, text };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls pred (sync or async) until truthy; throws what() after timeout ms. */
export async function waitFor(pred, timeout = 10000, what = () => "condition") {
	const deadline = Date.now() + timeout;
	for (;;) {
		const v = await pred();
		if (v)
			return v;
		if (Date.now() >= deadline)
			throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
		await sleep(25);
	}
}

/* Publishes n events to room with the API, retrying while the hub is away.
 * Returns the acknowledged seqs. delay: ms between publishes. */
export async function publishMany(room, n, delay = 0, event = "tick") {
	const acked = [];
	for (let i = 0; i < n; i++) {
		const deadline = Date.now() + 15000;
		for (;;) {
			let r;
			try {
				r = await api("POST", "/api/publish", { room, event, data: { i } });
			} catch (e) {
				r = { status: 0 };
			}
			if (r.status === 200) {
				acked.push(r.body.seq);
				break;
			}
			if (Date.now() > deadline)
				throw new Error(`publish ${i} to ${room} kept failing: ${r.status} ${r.text}`);
			await sleep(50);
		}
		if (delay)
			await sleep(delay);
	}
	return acked;
}

/* The connection's worker slot (1-based) from GET /api/connections. */
export async function workerOf(clientId) {
	const r = await waitFor(async () => {
		const res = await api("GET", "/api/connections");
		return res.body && res.body.connections.find((c) => String(c.id) === String(clientId));
	}, 5000, () => `connection ${clientId} in /api/connections`);
	return r.worker;
}

/* A handler that records events and checks, as they come, that seqs only
 * grow (the client's promise: never twice, never backwards). */
export function recorder() {
	const seen = [];
	const errors = [];
	const fn = (ev) => {
		const last = seen.length ? seen[seen.length - 1] : null;
		if (last && last.epoch === ev.epoch && ev.seq <= last.seq)
			errors.push(`seq ${ev.seq} after ${last.seq}`);
		seen.push(ev);
	};
	fn.seen = seen;
	fn.errors = errors;
	fn.seqs = () => seen.map((e) => e.seq);
	return fn;
}

/* Asserts seqs are exactly lo..hi. */
export function contiguous(seqs, lo, hi) {
	if (seqs.length !== hi - lo + 1)
		return false;
	return seqs.every((s, i) => s === lo + i);
}
