/* prediction-market client: bob, signed in, follows market 7 and creator
 * alice; a visitor without a token watches market 7 too. bob gets his
 * notifications live, marks one read, then all; the unread count that a
 * fresh connection starts with (the badge on page load) follows.
 *
 *   node contrib/examples/prediction-market/client.mjs   then run backend.py
 */
import { connect } from "../../js/herald.mjs";
import { WS_URL, WebSocket, check, main, token, waitFor } from "../examplelib.mjs";

const bobToken = () => token("bob");

/* The unread count a page shows on load: client.unread once connected. */
async function unreadOnLoad() {
	const page = connect({ url: WS_URL, WebSocket, getToken: bobToken });
	await waitFor(() => page.state === "connected", 10000, "a fresh page connected");
	const unread = page.unread;
	page.close();
	return unread;
}

main(async () => {
	const bob = connect({ url: WS_URL, WebSocket, getToken: bobToken });
	const visitor = connect({ url: WS_URL, WebSocket });   /* anonymous */
	const seen = [];
	const notes = [];
	bob.on("event", (ev) => {
		seen.push(`${ev.room} ${ev.event}`);
		console.log(`bob: ${ev.room} ${ev.event}`, JSON.stringify(ev.data));
	});
	bob.on("notification", (n) => notes.push(n));
	let visitorPrice = null;

	const subs = [bob.subscribe("market:7"), bob.subscribe("creator:alice"),
		      visitor.subscribe("market:7", (ev) => { visitorPrice = ev.data; })];
	await Promise.all(subs.map((s) => s.ready));
	await waitFor(() => bob.state === "connected", 10000, "bob connected");
	const before = await unreadOnLoad();
	console.log(`bob is ${bob.user}, ${before} unread`);
	console.log("ready");

	await waitFor(() => notes.length === 2, 15000, "2 notifications");
	for (const n of notes)
		console.log(`bob: notification ${n.id} "${n.title}" -> ${n.action_url}`);
	for (const want of ["market:7 price", "creator:alice market.created", "global announcement"])
		check(seen.includes(want), `bob got ${want}`);
	await waitFor(() => visitorPrice, 5000, "the visitor's price");
	check(visitorPrice.yes === 0.62 && visitor.user === null, "the anonymous visitor got market:7 too");

	check((await unreadOnLoad()) === before + 2, `unread on load: ${before + 2}`);
	const one = await bob.read([notes[0].id]);
	check(one.count === 1, `read ${notes[0].id}: count 1`);
	check((await unreadOnLoad()) === before + 1, `unread on load after reading one: ${before + 1}`);
	const all = await bob.read({ all: true });
	check(all.count === before + 1, `read all: count ${all.count}`);
	check((await unreadOnLoad()) === 0, "unread on load after reading all: 0");
	bob.close();
	visitor.close();
}, 30000);
