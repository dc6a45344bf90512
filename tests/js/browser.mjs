/* browser.mjs -- the JavaScript client in a real page in headless Chromium
 * (puppeteer-core): events arrive, then the daemon restarts (the harness does
 * it when this prints RESTART and answers on stdin) and the page resumes with
 * nothing lost or doubled. Prints a JSON result as its last line. */
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";

import { ROOT, contiguous, env, publishMany, requireTestModule, token, waitFor } from "./lib.mjs";

const puppeteer = requireTestModule("puppeteer-core");
const build = process.env.HERALD_PAGE_BUILD || "classic";
const pageDir = join(ROOT, "tests", "js", "page");
const files = {
	"/index.html": [join(pageDir, "index.html"), "text/html"],
	"/module.html": [join(pageDir, "module.html"), "text/html"],
	"/page.css": [join(pageDir, "page.css"), "text/css"],
	"/page-common.js": [join(pageDir, "page-common.js"), "text/javascript"],
	"/page.js": [join(pageDir, "page.js"), "text/javascript"],
	"/page.mjs": [join(pageDir, "page.mjs"), "text/javascript"],
	"/herald.js": [process.env.HERALD_JS_CLASSIC || join(ROOT, "contrib", "js", "herald.js"), "text/javascript"],
	"/herald.mjs": [join(ROOT, "contrib", "js", "herald.mjs"), "text/javascript"],
};

function serve() {
	const server = createServer((req, res) => {
		const f = files[new URL(req.url, "http://x").pathname];
		if (!f) {
			res.writeHead(404).end();
			return;
		}
		res.writeHead(200, { "Content-Type": f[1] }).end(readFileSync(f[0]));
	});
	return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once("line", resolve));

async function main() {
	const server = await serve();
	const browser = await puppeteer.launch({
		executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
		headless: true,
		args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
		timeout: 30000,
	});
	const result = { ok: false, build };
	try {
		const page = await browser.newPage();
		const logs = [];
		page.on("console", (m) => logs.push(m.text()));
		page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
		const room = `race:browser${process.pid}`;
		const q = new URLSearchParams({ ws: env.wsUrl, room, token: token("browser-user") });
		const path = build === "module" ? "module.html" : "index.html";
		await page.goto(`http://127.0.0.1:${server.address().port}/${path}?${q}`, { timeout: 15000 });
		const get = () => page.evaluate(() => ({
			states: window.__herald.states, events: window.__herald.events,
			subscribed: window.__herald.subscribed, errors: window.__herald.errors,
		}));
		await waitFor(async () => (await get()).subscribed, 10000,
			() => `subscribed in the page; console: ${logs.join(" | ")}`);
		await publishMany(room, 10);
		await waitFor(async () => (await get()).events.length >= 10, 10000, "10 events in the page");

		console.log("RESTART");
		await nextLine();
		await publishMany(room, 10);
		let last;
		await waitFor(async () => (last = await get()).events.length >= 20, 20000,
			() => `20 events after the restart: ${JSON.stringify(last)}`);
		await new Promise((r) => setTimeout(r, 200));
		last = await get();
		const connects = last.states.filter((s) => s.state === "connected").length;
		result.events = last.events;
		result.states = last.states;
		result.ok = contiguous(last.events, 1, 20) && connects >= 2;
		if (process.env.HERALD_SCREENSHOT)
			await page.screenshot({ path: process.env.HERALD_SCREENSHOT });
	} finally {
		await browser.close();
		server.close();
		stdin.close();
	}
	console.log(JSON.stringify(result));
	process.exit(result.ok ? 0 : 1);
}

main().catch((e) => {
	console.error(e && e.stack || e);
	process.exit(2);
});
