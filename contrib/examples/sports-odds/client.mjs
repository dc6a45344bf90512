/* sports-odds client: typed subscriptions mapped to room names, a token
 * checked before anything else, a heartbeat.
 *
 *   node contrib/examples/sports-odds/client.mjs      then run backend.py
 */
import { request } from "node:http";
import { randomBytes } from "node:crypto";
import { connect } from "../../js/herald.mjs";
import { WS_URL, WebSocket, check, main, token, waitFor } from "../examplelib.mjs";

/* The old API's subscription types, as rooms. */
function filterToRoom(f) {
	switch (f.type) {
	case "odds":
		return f.league ? `odds:${f.sport}.${f.league}` : `odds:${f.sport}`;
	case "match":
		return `match:${f.id}`;
	default:
		throw new TypeError(`unknown subscription type ${f.type}`);
	}
}

/* The WebSocket upgrade with a token in the URL: the status herald answers
 * (101 when accepted, 401 before any WebSocket exists when refused). */
function upgradeStatus(tok) {
	const url = new URL(WS_URL);
	url.protocol = "http:";
	url.searchParams.set("token", tok);
	return new Promise((resolve, reject) => {
		const req = request(url, { headers: {
			Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": randomBytes(16).toString("base64") } });
		req.on("upgrade", (res, socket) => { socket.destroy(); resolve(res.statusCode); });
		req.on("response", (res) => { res.resume(); resolve(res.statusCode); });
		req.on("error", reject);
		req.end();
	});
}

main(async () => {
	/* pat's plan: all football odds, and any match. */
	const plan = { rooms: ["odds:football*"] };
	check(await upgradeStatus(token("pat", plan)) === 101, "a valid token on the upgrade: 101");
	check(await upgradeStatus(token("pat", plan, -60)) === 401, "an expired token: HTTP 401 before the upgrade");
	check(await upgradeStatus("not.a.jwt") === 401, "a forged token: HTTP 401 before the upgrade");

	const client = connect({ url: WS_URL, WebSocket, getToken: () => token("pat", plan) });
	const got = [];
	const onOdds = (ev) => {
		got.push(`${ev.room} ${ev.data.update}`);
		console.log(`${ev.room}: ${ev.event} #${ev.data.update}`, JSON.stringify(ev.data.prices));
	};
	const wanted = [
		{ type: "odds", sport: "football", league: "epl" },
		{ type: "match", id: 200 },
	];
	const subs = wanted.map((f) => client.subscribe(filterToRoom(f), onOdds));
	for (const s of subs)
		console.log(`subscribed ${s.room}:`, JSON.stringify(await s.ready));

	/* Not in the plan: refused. */
	const tennis = client.subscribe(filterToRoom({ type: "odds", sport: "tennis" }), onOdds);
	const refused = await tennis.ready.then(() => "subscribed", (e) => e.code);
	check(refused === "forbidden", `odds:tennis is not in the plan: ${refused}`);
	tennis.unsubscribe();

	/* The heartbeat: herald pings the socket; the application may ping too. */
	const pong = await client.ping();
	check(pong.type === "pong", `ping answered: pong at ${pong.ts}`);

	let broadcast = null;
	client.subscribe("global", (ev) => { broadcast = ev; });
	console.log("ready");

	await waitFor(() => broadcast, 15000, "the test broadcast");
	console.log(`global: ${broadcast.event}`, JSON.stringify(broadcast.data));
	check(JSON.stringify(got) === JSON.stringify(["odds:football.epl 1", "match:200 2"]),
	      `only the subscribed filters' updates arrived: ${got.join(", ")}`);
	client.close();
}, 30000);
