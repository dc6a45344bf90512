/* proxy.mjs -- herald behind a real nginx with TLS (tests/integration/test_proxy.py
 * starts both): the JavaScript client over WSS subscribes, receives and
 * resumes after a kick; /api/connections and the per-address limit
 * (max_connections_per_ip = 3) see the forwarded address when nginx is a
 * trusted proxy (HERALD_EXPECT=trusted), nginx's own otherwise. Clients
 * connect from 127.0.0.2 and 127.0.0.3 so that the addresses differ. */
import assert from "node:assert/strict";

import { connect } from "../../contrib/js/herald.mjs";
import { WebSocket, api, contiguous, sleep, token, waitFor } from "./lib.mjs";

const wss = process.env.HERALD_PROXY_WSS;
const apiUrl = process.env.HERALD_PROXY_API;
const trusted = process.env.HERALD_EXPECT === "trusted";

const from = (localAddress) => class extends WebSocket {
	constructor(url, proto) {
		super(url, proto, { localAddress, rejectUnauthorized: false });
	}
};

async function listed(id) {
	return waitFor(async () => {
		const r = await api("GET", "/api/connections");
		return r.body.connections.find((c) => String(c.id) === String(id));
	}, 5000, `connection ${id}`);
}

async function main() {
	/* the API over TLS through nginx */
	const room = `race:proxy${process.pid}`;
	const health = await fetch(`${apiUrl}/health`);
	assert.equal(health.status, 200);
	const unauth = await fetch(`${apiUrl}/api/stats`);
	assert.equal(unauth.status, 401);

	const publish = async (n) => {
		for (let i = 0; i < n; i++) {
			const r = await fetch(`${apiUrl}/api/publish`, {
				method: "POST",
				headers: { Authorization: `Bearer ${process.env.HERALD_API_KEY}`,
					   "Content-Type": "application/json" },
				body: JSON.stringify({ room, event: "odds", data: { i } }),
			});
			assert.equal(r.status, 200, await r.text());
		}
	};

	/* the client over WSS */
	const states = [];
	const c = connect({ url: wss, getToken: () => token("proxy-user"), WebSocket: from("127.0.0.2"),
			    backoff: { min: 20, max: 200 } });
	c.on("state", (s) => states.push(s.state));
	const seqs = [];
	try {
		await c.subscribe(room, (ev) => seqs.push(ev.seq)).ready;
		await publish(5);
		await waitFor(() => seqs.length === 5, 10000, "5 events over WSS");
		const conn = await listed(c.clientId);
		assert.equal(conn.remote_addr, trusted ? "127.0.0.2" : "127.0.0.1");
		const kicked = await api("DELETE", `/api/connections/${c.clientId}`);
		assert.equal(kicked.status, 200);
		await waitFor(() => states.filter((s) => s === "connected").length >= 2, 10000, "a reconnect");
		await publish(5);
		await waitFor(() => seqs.length >= 10, 10000, () => `10 events, got ${seqs}`);
		await sleep(100);
		assert.ok(contiguous(seqs, 1, 10), `seqs ${seqs}`);

		/* per-address limit: 3 connections per address */
		const socks = [];
		let refused = -1;
		for (let i = 0; i < 4 && refused < 0; i++) {
			const ws = new (from("127.0.0.3"))(wss, "herald.v1");
			ws.closeCode = null;
			ws.on("close", (code) => { ws.closeCode = code; });
			const welcome = await new Promise((resolve, reject) => {
				ws.once("message", (d) => resolve(JSON.parse(d.toString())));
				ws.once("error", reject);
			});
			socks.push(ws);
			await listed(welcome.client_id).catch(() => null);
			await waitFor(() => ws.closeCode !== null, 1000).catch(() => null);
			if (ws.closeCode !== null)
				refused = i;
		}
		/* trusted: 127.0.0.3 has its own count (the 4th goes); untrusted:
		 * everyone is nginx's 127.0.0.1, the client above included (the 3rd goes) */
		assert.equal(refused, trusted ? 3 : 2);
		assert.equal(socks[refused].closeCode, 1008);
		for (let i = 0; i < refused; i++)
			assert.equal(socks[i].closeCode, null, `connection ${i} closed`);
		for (const ws of socks)
			ws.terminate();
	} finally {
		c.close();
	}
	console.log(JSON.stringify({ ok: true, seqs }));
}

main().catch((e) => {
	console.error(e && e.stack || e);
	process.exit(1);
});
