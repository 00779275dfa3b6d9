"""Example Exosphere Alerts webhook receiver in Python.

It verifies every delivery with the official Standard Webhooks library
(headers webhook-id, webhook-timestamp, webhook-signature; the library
refuses timestamps more than 5 minutes from our clock), handles each
webhook-id once (retries, redeliveries and replays carry the same id), and
answers at once, leaving the real work to a queue of its own.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    EXO_WEBHOOK_SECRET=whsec_... .venv/bin/python receiver.py 9000

Point an endpoint at http://<host>:9000/hook. Each verified, new delivery is
printed on stdout as one JSON line; the first line says where it listens.
"""

import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

MAX_BODY = 1 << 20
KEEP_IDS_SECONDS = 48 * 3600  # longer than the retry window

webhook = Webhook(os.environ["EXO_WEBHOOK_SECRET"])  # the whole whsec_... secret
seen = {}  # webhook-id -> when first handled
seen_lock = threading.Lock()
work = queue.Queue()  # verified, new deliveries for the worker


def first_time(webhook_id):
    """Records webhook_id and says whether it is new."""
    now = time.monotonic()
    with seen_lock:
        for old in [k for k, at in seen.items() if now - at > KEEP_IDS_SECONDS]:
            del seen[old]
        if webhook_id in seen:
            return False
        seen[webhook_id] = now
        return True


def worker():
    """The slow part (page someone, open a ticket ...) runs here, not in the request."""
    while True:
        webhook_id, payload = work.get()
        data = payload.get("data", {})
        line = {"webhook_id": webhook_id, "type": payload.get("type"), "alert_id": data.get("alert_id"),
                "tenant_id": data.get("tenant_id"), "workflow": (data.get("workflow") or {}).get("name"),
                "run_id": (data.get("run") or {}).get("id")}
        print(json.dumps(line), flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/hook":
            return self.answer(404, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.answer(413, "too large")
        body = self.rfile.read(length)  # the raw bytes: verify them before parsing
        try:
            webhook.verify(body, dict(self.headers.items()), json_parse=False)
        except Exception as err:  # a missing, malformed or wrong signature, or a stale timestamp
            print(f"refused: {err}", file=sys.stderr, flush=True)
            return self.answer(401, "bad signature")
        try:
            payload = json.loads(body)
        except ValueError:
            return self.answer(400, "not a payload v1")
        webhook_id = self.headers["webhook-id"]
        if not first_time(webhook_id):
            return self.answer(200, "")  # already handled: acknowledge, do nothing
        work.put((webhook_id, payload))
        self.answer(204, "")

    def answer(self, status, text):
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, fmt, *args):  # keep stdout for deliveries
        print(fmt % args, file=sys.stderr, flush=True)


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "9000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=worker, daemon=True).start()
    host, port = server.server_address[:2]
    print(json.dumps({"listening": f"{host}:{port}"}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
