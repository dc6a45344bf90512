/* ecommerce client: alice on her phone and her laptop, a support agent, the
 * back office (role admin), bob (another customer) and a product page.
 *
 *   node contrib/examples/ecommerce/client.mjs      then run backend.py
 */
import { connect } from "../../js/herald.mjs";
import { WS_URL, WebSocket, check, main, token, waitFor } from "../examplelib.mjs";

const open = (sub, claims) =>
	connect({ url: WS_URL, WebSocket, ...(sub ? { getToken: () => token(sub, claims) } : {}) });

function log(who) {
	const got = [];
	const fn = (ev) => {
		got.push(ev.event);
		console.log(`${who}: ${ev.room}#${ev.seq} ${ev.event}`, JSON.stringify(ev.data));
	};
	fn.got = got;
	return fn;
}

main(async () => {
	const phone = open("alice");
	const laptop = open("alice");
	const sam = open("sam", { rooms: ["order:*"] });       /* support */
	const ops = open("ops", { roles: ["admin"] });         /* back office */
	const bob = open("bob");
	const page = open(null);                               /* product page, anonymous */

	const onPhone = log("alice/phone"), onLaptop = log("alice/laptop");
	const onSam = log("sam"), onOps = log("ops"), onPage = log("page");
	const subs = [
		phone.subscribe("order:alice", onPhone), laptop.subscribe("order:alice", onLaptop),
		sam.subscribe("order:alice", onSam), ops.subscribe("admin", onOps),
		page.subscribe("inventory:sku-42", onPage),
	];
	await Promise.all(subs.map((s) => s.ready));
	const snoop = bob.subscribe("order:alice");
	const refused = await snoop.ready.then(() => "subscribed", (e) => e.code);
	check(refused === "forbidden", `bob may not subscribe to order:alice: ${refused}`);
	snoop.unsubscribe();
	await waitFor(() => bob.state === "connected", 10000, "bob connected");
	console.log("ready");

	const orderEvents = ["order.created", "order.paid", "order.shipped"];
	await waitFor(() => onPhone.got.length === 3 && onLaptop.got.length === 3 && onSam.got.length === 3,
		      15000, "the order's events on every device");
	for (const [who, fn] of [["alice's phone", onPhone], ["alice's laptop", onLaptop], ["sam (support)", onSam]])
		check(JSON.stringify(fn.got) === JSON.stringify(orderEvents), `${who} saw ${fn.got.join(", ")}`);
	await waitFor(() => onOps.got.length === 4 && onPage.got.length === 2, 5000, "admin and page events");
	check(JSON.stringify(onOps.got) === JSON.stringify(["order.created", "inventory.low", "order.paid", "order.shipped"]),
	      "the admin room saw every order event and the stock alert");

	/* A product page opened now gets the current stock at once: the room
	 * keeps one message (pruning runs in the background, so for a moment it
	 * may be more), and since {seq: 0, epoch: ""} replays what is kept; the
	 * last one replayed is the current value. */
	const late = open(null);
	let stock = null;
	const s = late.subscribe("inventory:sku-42", (ev) => { stock = ev.data.stock; }, { since: { seq: 0, epoch: "" } });
	console.log("late page:", JSON.stringify(await s.ready));
	await waitFor(() => stock !== null, 5000, "the current stock");
	check(stock === 3, `a page opened later shows the current stock: ${stock}`);
	for (const c of [phone, laptop, sam, ops, bob, page, late])
		c.close();
}, 30000);
