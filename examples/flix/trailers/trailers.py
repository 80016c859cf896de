#!/usr/bin/env python3
"""trailers: the flix trailers service, written in Python (standard library only).

It proves that any program speaking HTTP joins a Shoal system: it knows nothing
of gossip; the supervisor starts it (a `command:` service), health-checks it on
/healthz and registers it in discovery on its behalf.

    GET /healthz         200 {"status": "alive"}
    GET /readyz          200 {"status": "ready"}, 503 while shutting down
    GET /trailers/{id}   200 {"title": id, "url": "https://cdn.example/trailers/<id>.mp4"}

It serves on the socket the supervisor opened for it (the file descriptor
named by SHOAL_LISTEN_FD), or else listens on 127.0.0.1:$PORT; it serves each
request on its own thread, logs one line per request to stdout (passing
health and readiness checks excepted), and on SIGTERM (or SIGINT) stops
accepting, lets the requests in flight finish, and exits 0.
"""

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE_PATH = re.compile(r"^/trailers/([1-9][0-9]{0,17})$")
PROBES = ("/healthz", "/readyz")  # passing checks are not logged
draining = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server_version = "flix-trailers/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as Shoal's client expects
    timeout = 120  # an idle keep-alive connection is closed after this

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return self.send_json(200, {"status": "alive"})
        if path == "/readyz":
            if draining.is_set():
                return self.send_json(503, {"status": "draining"})
            return self.send_json(200, {"status": "ready"})
        m = TITLE_PATH.match(path)
        if m:
            tid = int(m.group(1))
            return self.send_json(200, {"title": tid, "url": f"https://cdn.example/trailers/{tid}.mp4"})
        return self.send_error_json(404, "not_found", f"no route for {path}; try GET /trailers/{{id}}")

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self.send_error_json(405, "method_not_allowed", f"{self.command} is not allowed here; use GET",
                             {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def send_json(self, status, obj, headers=None):
        body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_json(self, status, code, message, headers=None):
        self.send_json(status, {"error": {"code": code, "message": message}}, headers)

    def log_request(self, code="-", size="-"):
        # One line per request, to stdout (the supervisor prefixes it);
        # but not for a health or readiness check that passed: the
        # supervisor sends one a second to every instance, forever.
        if self.path.split("?", 1)[0] in PROBES and str(code) == "200":
            return
        print(f'{self.address_string()} "{self.command} {self.path}" {code}', flush=True)

    def log_message(self, fmt, *args):
        print(fmt % args, file=sys.stderr, flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close waits for requests in flight
    block_on_close = True
    allow_reuse_address = True  # PORT may be reserved by the supervisor's socket
    request_queue_size = 128  # listen(2) backlog; socketserver's 5 drops bursts

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conns = set()
        self.conns_lock = threading.Lock()

    def track(self, conn, alive):
        with self.conns_lock:
            (self.conns.add if alive else self.conns.discard)(conn)

    def close_idle(self):
        """Stop reading from every open connection: a thread waiting for the
        next request on a keep-alive connection ends; one writing its answer
        finishes it first."""
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RD)
            except OSError:
                pass


def new_server():
    """The server on the inherited socket (SHOAL_LISTEN_FD: bound by the
    supervisor to the address it announces, so no other program can take it
    before this one listens), else on 127.0.0.1:$PORT."""
    fd = os.environ.pop("SHOAL_LISTEN_FD", "")
    if not fd:
        return Server(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
    sock = socket.socket(fileno=int(fd))
    httpd = Server(sock.getsockname(), Handler, bind_and_activate=False)
    httpd.socket.close()
    httpd.socket, httpd.server_address = sock, sock.getsockname()
    httpd.server_activate()  # listen(2); harmless if a predecessor already listens
    return httpd


def main():
    httpd = new_server()

    def stop(signum, _frame):
        if draining.is_set():
            return
        draining.set()
        print(f"trailers: {signal.Signals(signum).name}, shutting down", flush=True)
        # shutdown() waits for serve_forever to return: not from its thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"trailers: serving on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    start = time.monotonic()
    httpd.serve_forever()
    httpd.close_idle()
    httpd.server_close()  # joins the request threads
    print(f"trailers: stopped after {time.monotonic() - start:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
