/* examplelib.mjs -- what the Node clients of contrib/examples/ share: the
 * WebSocket constructor, development tokens, the HTTP API and time limits.
 *
 * Settings come from the environment, with the development config's values
 * as defaults:
 *
 *   HERALD_WS_URL      client endpoint          (ws://127.0.0.1:8080/ws)
 *   HERALD_API_URL     admin listener           (http://127.0.0.1:8081)
 *   HERALD_API_KEY     the config's api_key     (dev-api-key)
 *   HERALD_JWT_SECRET  the config's jwt_secret  (dev-secret-change-me)
 *
 * Node 22 and browsers have a global WebSocket; on Node 18-21 install the ws
 * package (npm install ws) or point NODE_PATH at a node_modules holding it. */
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";

export const WS_URL = process.env.HERALD_WS_URL || "ws://127.0.0.1:8080/ws";
export const API_URL = (process.env.HERALD_API_URL || "http://127.0.0.1:8081").replace(/\/$/, "");
export const API_KEY = process.env.HERALD_API_KEY || "dev-api-key";
const JWT_SECRET = process.env.HERALD_JWT_SECRET || "dev-secret-change-me";

export const WebSocket = globalThis.WebSocket || createRequire(import.meta.url)("ws");

const b64url = (s) => Buffer.from(s).toString("base64url");

/* An HS256 token for sub. In production your backend signs it (any JWT
 * library) and the page fetches it; here the example signs its own. */
export function token(sub, claims = {}, ttl = 3600) {
	const now = Math.floor(Date.now() / 1000);
	const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
	const body = b64url(JSON.stringify({ sub, iat: now, exp: now + ttl, ...claims }));
	const sig = createHmac("sha256", JWT_SECRET).update(`${head}.${body}`).digest();
	return `${head}.${body}.${b64url(sig)}`;
}

/* Calls the HTTP API (what your backend does); returns the JSON answer. */
export async function api(method, path, body) {
	const res = await fetch(API_URL + path, {
		method,
		headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
		signal: AbortSignal.timeout(10000),
	});
	const json = await res.json().catch(() => null);
	if (!res.ok)
		throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
	return json;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Waits until pred() is true (polling); throws after ms. */
export async function waitFor(pred, ms, what) {
	const deadline = Date.now() + ms;
	while (!(await pred())) {
		if (Date.now() > deadline)
			throw new Error(`timed out waiting for ${what}`);
		await sleep(20);
	}
}

/* Prints "ok: what", or throws. */
export function check(cond, what) {
	if (!cond)
		throw new Error(`check failed: ${what}`);
	console.log(`ok: ${what}`);
}

/* Runs fn; exits 0 when it resolves, 1 when it throws, 2 after ms. */
export function main(fn, ms = 30000) {
	const timer = setTimeout(() => {
		console.error(`FAIL: not done within ${ms} ms`);
		process.exit(2);
	}, ms);
	fn().then(() => {
		clearTimeout(timer);
		process.exit(0);
	}, (e) => {
		console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
		process.exit(1);
	});
}
