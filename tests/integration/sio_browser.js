// sio_browser.js -- the same front-end code in headless Chromium: the browser
// bundle of socket.io-client against herald (polling, upgrade, subscribe,
// events, recovery). Prints one JSON object with what the page saw.
// Usage: node sio_browser.js URL ADMIN_URL API_KEY TOKEN
"use strict";
const path = require("path");
const nm = path.join(__dirname, "..", "node", "node_modules");
const puppeteer = require(path.join(nm, "puppeteer-core"));

const [url, adminUrl, apiKey, token] = process.argv.slice(2);

async function publish(room, event, data) {
  const r = await fetch(adminUrl + "/api/publish", {
    method: "POST",
    headers: { "Authorization": "Bearer " + apiKey, "Content-Type": "application/json" },
    body: JSON.stringify({ room, event, data }),
  });
  if (r.status !== 200) throw new Error("publish " + r.status);
}

async function until(page, expr, ms = 10000) {
  await page.waitForFunction(expr, { timeout: ms, polling: 20 });
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
  });
  const result = {};
  let serverToClose = null;
  try {
    // The page comes from another origin than herald's: CORS is exercised.
    const bundle = require("fs").readFileSync(path.join(nm, "socket.io-client", "dist",
                                                        "socket.io.min.js"));
    const server = require("http").createServer((req, res) => {
      if (req.url === "/socket.io.min.js") {
        res.writeHead(200, { "Content-Type": "application/javascript" });
        res.end(bundle);
      } else {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end("<!doctype html><script src=\"/socket.io.min.js\"></script>");
      }
    });
    await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
    serverToClose = server;
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    result.ack = await page.evaluate(async (url, token) => {
      window.seen = [];
      window.upgraded = null;
      const s = window.sock = io(url, { auth: { token }, reconnectionDelay: 100 });
      s.io.on("open", () => {
        window.firstTransport = window.firstTransport || s.io.engine.transport.name;
        s.io.engine.on("upgrade", (t) => { window.upgraded = t.name; });
      });
      s.on("odds", (payload, offset) => window.seen.push({ payload, offset }));
      await new Promise((ok, ko) => { s.on("connect", ok); s.on("connect_error", ko); });
      return await new Promise((ok) => s.emit("subscribe", { room: "race", id: "b1" }, ok));
    }, url, token);
    await until(page, "window.upgraded === 'websocket'");
    for (let i = 0; i < 3; i++) await publish("race:b1", "odds", { i });
    await until(page, "window.seen.length === 3");
    result.rooms = await page.evaluate(() => new Promise((ok) => window.sock.emit("getRooms", ok)));
    // a dropped connection: the client stays away while events are published
    const sid = await page.evaluate(() => {
      const id = window.sock.id;
      window.sock.io.reconnection(false);
      window.sock.io.engine.close();
      return id;
    });
    await until(page, "!window.sock.connected");
    for (let i = 3; i < 6; i++) await publish("race:b1", "odds", { i });
    await page.evaluate(() => { window.sock.io.reconnection(true); window.sock.connect(); });
    await until(page, "window.sock.connected && window.seen.length === 6");
    Object.assign(result, await page.evaluate(() => ({
      firstTransport: window.firstTransport, upgraded: window.upgraded,
      seen: window.seen, recovered: window.sock.recovered, id: window.sock.id,
    })));
    result.sameId = result.id === sid;
  } catch (e) {
    result.error = String(e && e.stack || e);
  } finally {
    await browser.close();
    if (serverToClose) serverToClose.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
})();
