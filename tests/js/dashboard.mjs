/* dashboard.mjs -- the dashboard in headless Chromium (puppeteer-core), as an
 * operator uses it: sign in with the API key, watch the figures move while
 * publishes run, watch a room's events, kick a connection from the page.
 * Saves a screenshot to HERALD_SCREENSHOT. Exits 0 when all held. */
import assert from "node:assert/strict";

import { WebSocket, api, publishMany, requireTestModule, sleep, waitFor } from "./lib.mjs";

const puppeteer = requireTestModule("puppeteer-core");
const admin = process.env.HERALD_ADMIN_URL;

async function main() {
	const browser = await puppeteer.launch({
		executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
		headless: true,
		args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
		defaultViewport: { width: 1280, height: 1000 },
		timeout: 30000,
	});
	const problems = [];
	const ws = new WebSocket(process.env.HERALD_WS_URL, "herald.v1");
	let closeCode = null;
	ws.on("close", (code) => { closeCode = code; });
	try {
		const welcome = await new Promise((resolve, reject) => {
			ws.once("message", (d) => resolve(JSON.parse(d.toString())));
			ws.once("error", reject);
		});
		const page = await browser.newPage();
		page.on("console", (m) => {
			if (m.type() === "error" && !/401/.test(m.text()))
				problems.push(m.text());
		});
		page.on("pageerror", (e) => problems.push("pageerror: " + e.message));
		await page.goto(admin + "/", { timeout: 15000 });
		const text = (sel) => page.$eval(sel, (e) => e.textContent);
		const visible = (sel) => page.$eval(sel, (e) => !e.hidden);

		/* nothing without the key: a wrong one is refused */
		assert.ok(await visible("#signin"));
		await page.type("#apikey", "wrong-key");
		await page.click("#signin-form button[type=submit]");
		await waitFor(async () => visible("#signin-error"), 5000, "the refusal");
		assert.ok(!(await visible("#app")));

		await page.type("#apikey", process.env.HERALD_API_KEY);
		await page.click("#signin-form button[type=submit]");
		await waitFor(async () => visible("#app"), 10000, "the signed-in page");
		const stored = await page.evaluate(() => [sessionStorage.getItem("herald.apiKey"), localStorage.length]);
		assert.deepEqual(stored, [process.env.HERALD_API_KEY, 0]);
		await waitFor(async () => Number(await text("#t-connections")) >= 1, 10000, "connections >= 1");
		await waitFor(async () => (await text("#hub-badge")) === "hub up", 5000, "hub up");

		/* publishes move the rates and the watched room streams its events */
		const room = "race:dash-live";
		await page.$eval("#watch-room", (e) => { e.value = ""; });
		await page.type("#watch-room", room);
		await page.click("#watch-form button[type=submit]");
		const publisher = publishMany(room, 60, 40);
		let rate = 0;
		await waitFor(async () => (rate = Number(await text("#t-published"))) > 0, 15000,
			"publishes/s above 0");
		await waitFor(async () => (await page.$$("#events li")).length >= 5, 10000, "room events on the page");
		await publisher;
		await waitFor(async () => (await page.$$("#events li")).length >= 60, 10000, "all 60 room events");
		const first = await page.$eval("#events li", (e) => e.textContent);
		assert.match(first, /#60/);

		/* the rooms list, searched by prefix, shows the room and its subscriber */
		ws.send(JSON.stringify({ type: "subscribe", room, id: 1 }));
		await sleep(300);
		await page.type("#rooms-search", "race:dash");
		await page.click("#rooms-form button[type=submit]");
		await waitFor(async () => {
			const cells = await page.$$eval("#rooms tbody td", (t) => t.map((x) => x.textContent));
			return cells[0] === room && cells[1] === "60" && cells[2] === "1";
		}, 5000, "the room in the list");

		/* kick the WebSocket client from the connections tab */
		await page.click("#tabs button[data-tab=connections]");
		const row = `#conns tr[data-id="${welcome.client_id}"] button.kick`;
		await page.waitForSelector(row, { timeout: 10000 });
		await page.click(row);
		await waitFor(() => closeCode !== null, 10000, "the kicked client to close");
		assert.equal(closeCode, 4008);

		/* the tabs that need other features degrade, never break */
		await page.click("#tabs button[data-tab=workflows]");
		await waitFor(async () => (await text("#wf-note")).length > 0, 5000, "the workflows note");
		await page.click("#tabs button[data-tab=webhooks]");
		await page.click("#tabs button[data-tab=rooms]");
		await sleep(1200);
		if (process.env.HERALD_SCREENSHOT)
			await page.screenshot({ path: process.env.HERALD_SCREENSHOT, fullPage: true });

		/* signing out forgets the key */
		await page.click("#signout");
		assert.equal(await page.evaluate(() => sessionStorage.getItem("herald.apiKey")), null);
		assert.deepEqual(problems.filter((p) => /Content Security Policy|pageerror/.test(p)), []);
		console.log(JSON.stringify({ ok: true, rate, problems }));
	} finally {
		ws.terminate();
		await browser.close();
	}
}

main().catch((e) => {
	console.error(e && e.stack || e);
	process.exit(1);
});
