"""A local HTTPS webhook receiver for the tests: a real TLS server (certificates from
trustme) whose answers follow each webhook's `mode` field, and which applies each
Idempotency-Key once, as a receiver should."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from sinks.webhook.delivery import SIGNATURE_HEADER, verify_signature

SECRET = "test-signing-secret"


class Receiver:
    """An HTTPS receiver whose answers follow each webhook's `mode` field:
    ok, fail2 (503 twice), throttle (429 with Retry-After: 1 once), slow (1.5 s),
    reject (400), redirect (302). It applies each Idempotency-Key once."""

    def __init__(self, tmp: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("localhost")
        self.ca_file = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.bad_signatures = 0
        self.documents: dict[str, dict[str, Any]] = {}
        self.applied_at: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                ok = verify_signature(
                    SECRET.encode(), self.headers[SIGNATURE_HEADER], body, time.time()
                )
                doc = json.loads(body)
                mode = doc["fields"].get("mode", "ok")
                with receiver.lock:
                    receiver.requests[key] += 1
                    attempt = receiver.requests[key]
                    receiver.bad_signatures += 0 if ok else 1
                status, headers = 200, {}
                if mode == "fail2" and attempt <= 2:
                    status = 503
                elif mode == "throttle" and attempt == 1:
                    status, headers = 429, {"Retry-After": "1"}
                elif mode == "reject":
                    status = 400
                elif mode == "redirect":
                    status, headers = 302, {"Location": "https://localhost/elsewhere"}
                elif mode == "slow":
                    time.sleep(1.5)
                if status == 200:
                    with receiver.lock:
                        if receiver.applied[key] == 0:
                            receiver.documents[key] = doc
                            receiver.applied_at[key] = time.time()
                        receiver.applied[key] = 1  # a repeated key is answered, not applied
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/crm") -> str:
        return f"https://localhost:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
