#!/usr/bin/env node
// verify.js -- checks herald webhook deliveries (Standard Webhooks) on the
// receiving side, with Node's built-in modules only.
//
// As a module:
//
//   const { verify } = require("./verify.js");
//   const payload = verify(secret, req.headers, rawBody);   // or throws
//
// As a tiny receiver, for trying an endpoint out:
//
//   node verify.js --port 8000 --secret whsec_...     (or WEBHOOK_SECRET=...)
//
// It answers 200 to every POST whose signature verifies (400 otherwise), prints
// one JSON line per verified delivery on stdout, and answers GET /events with
// the list of verified deliveries so far.
//
// The signature is v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>
// where key is the base64-decoded part of the secret after "whsec_". The
// webhook-signature header may carry several space-separated signatures (one
// per secret during a rotation): one matching signature is enough.
"use strict";

const crypto = require("crypto");
const http = require("http");

const TOLERANCE = 300; // seconds a webhook-timestamp may be off (replay protection)

class VerificationError extends Error {}

// The HMAC key of a "whsec_<base64>" secret (a bare base64 one works too).
function secretKey(secret) {
  const b64 = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new VerificationError("invalid secret");
  }
  return Buffer.from(b64, "base64");
}

// The v1 signature of body: "v1,<base64>".
function sign(secret, msgId, timestamp, body) {
  const mac = crypto.createHmac("sha256", secretKey(secret));
  mac.update(`${msgId}.${timestamp}.`);
  mac.update(typeof body === "string" ? Buffer.from(body, "utf8") : body);
  return "v1," + mac.digest("base64");
}

// Checks one delivery and returns its payload (the parsed JSON body).
//   secret   the endpoint's secret ("whsec_..."), or an array of secrets
//   headers  the request headers (req.headers, or any object; names are
//            compared without regard to case)
//   body     the raw request body (Buffer or string), exactly as received:
//            parse it only after it has been verified
// Throws VerificationError when a header is missing, the timestamp is more
// than tolerance seconds away from now, or no signature matches.
function verify(secret, headers, body, tolerance = TOLERANCE, now = Date.now() / 1000) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = String(v);
  const msgId = h["webhook-id"];
  const timestamp = h["webhook-timestamp"];
  const signatures = h["webhook-signature"];
  if (!msgId || !timestamp || !signatures) {
    throw new VerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (!/^\d+$/.test(timestamp)) throw new VerificationError("invalid webhook-timestamp");
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new VerificationError("webhook-timestamp too far from now");
  }
  const raw = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const expected = (Array.isArray(secret) ? secret : [secret])
    .map((s) => Buffer.from(sign(s, msgId, timestamp, raw)));
  for (const sig of signatures.split(" ").filter(Boolean)) {
    const got = Buffer.from(sig);
    for (const want of expected) {
      // Constant-time comparison, as for any MAC.
      if (got.length === want.length && crypto.timingSafeEqual(got, want)) {
        return JSON.parse(raw.toString("utf8"));
      }
    }
  }
  throw new VerificationError("no valid signature");
}

// A receiver: POST verifies and acknowledges; GET /events lists what was verified.
function serve(port, secret, host = "127.0.0.1") {
  const events = [];
  const seen = new Set();
  const answer = (res, status, obj) => {
    const data = Buffer.from(JSON.stringify(obj));
    res.writeHead(status, { "content-type": "application/json", "content-length": data.length });
    res.end(data);
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "GET" && req.url === "/events") return answer(res, 200, { events });
      if (req.method !== "POST") return answer(res, 404, { error: "not found" });
      let payload;
      try {
        payload = verify(secret, req.headers, Buffer.concat(chunks));
      } catch (e) {
        if (!(e instanceof VerificationError)) throw e;
        process.stderr.write(`rejected: ${e.message}\n`);
        return answer(res, 400, { error: e.message });
      }
      // Deliveries are at least once: the same webhook-id may come again.
      const id = req.headers["webhook-id"];
      const event = { webhook_id: id, duplicate: seen.has(id), payload };
      seen.add(id);
      events.push(event);
      process.stdout.write(JSON.stringify(event) + "\n");
      answer(res, 200, { ok: true });
    });
  });
  server.listen(port, host, () => {
    process.stderr.write(`listening on http://${host}:${server.address().port}/\n`);
  });
  return server;
}

module.exports = { verify, sign, serve, VerificationError, TOLERANCE };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
  };
  const secret = opt("--secret", process.env.WEBHOOK_SECRET);
  if (!secret) {
    process.stderr.write("usage: node verify.js [--port N] [--host H] --secret whsec_...\n");
    process.exit(2);
  }
  const server = serve(Number(opt("--port", "8000")), secret, opt("--host", "127.0.0.1"));
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
}
