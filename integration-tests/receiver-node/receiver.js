// Example Exosphere Alerts webhook receiver in Node.js.
//
// It verifies every delivery with the official Standard Webhooks library
// (headers webhook-id, webhook-timestamp, webhook-signature; the library
// refuses timestamps more than 5 minutes from our clock), handles each
// webhook-id once (retries, redeliveries and replays carry the same id), and
// answers at once, leaving the real work for after the answer.
//
//   npm ci
//   EXO_WEBHOOK_SECRET=whsec_... node receiver.js 9000
//
// Point an endpoint at http://<host>:9000/hook. Each verified, new delivery
// is printed on stdout as one JSON line; the first line says where it listens.
"use strict";

const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const MAX_BODY = 1 << 20;
const KEEP_IDS_MS = 48 * 3600 * 1000; // longer than the retry window

const webhook = new Webhook(process.env.EXO_WEBHOOK_SECRET); // the whole whsec_... secret
const seen = new Map(); // webhook-id -> when first handled

function firstTime(id) {
  const now = Date.now();
  for (const [k, at] of seen) {
    if (now - at > KEEP_IDS_MS) seen.delete(k);
  }
  if (seen.has(id)) return false;
  seen.set(id, now);
  return true;
}

// The slow part (page someone, open a ticket ...) runs here, after the answer.
function handle(id, payload) {
  const data = payload.data || {};
  const line = {
    webhook_id: id,
    type: payload.type,
    alert_id: data.alert_id,
    tenant_id: data.tenant_id,
    workflow: data.workflow && data.workflow.name,
    run_id: data.run && data.run.id,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
}

function answer(res, status, text = "") {
  res.writeHead(status, { "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/hook") return answer(res, 404, "not found");
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      answer(res, 413, "too large");
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8"); // the raw bytes: verify them before parsing
    try {
      webhook.verify(body, req.headers, { jsonParse: false });
    } catch (err) {
      // a missing, malformed or wrong signature, or a stale timestamp
      process.stderr.write(`refused: ${err.message}\n`);
      return answer(res, 401, "bad signature");
    }
    let payload;
    try {
      payload = JSON.parse(body);
    } catch {
      return answer(res, 400, "not a payload v1");
    }
    const id = req.headers["webhook-id"];
    if (!firstTime(id)) return answer(res, 200); // already handled: acknowledge, do nothing
    answer(res, 204);
    setImmediate(() => handle(id, payload));
  });
});

const port = Number(process.argv[2] || process.env.PORT || 9000);
server.listen(port, "127.0.0.1", () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ listening: `${a.address}:${a.port}` }) + "\n");
});
