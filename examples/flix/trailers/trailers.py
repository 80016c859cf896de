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

With the identity shoal up gives every instance (SHOAL_IDENTITY_CERT,
SHOAL_IDENTITY_KEY, SHOAL_IDENTITY_BUNDLE), it serves mutual TLS only, as
an SDK service does: TLS 1.3, its certificate, and a client certificate of
the system's CA required (the CA's name constraint keeps it to the
system). The caller is the service in that certificate's spiffe:// ID, and
SHOAL_POLICY (the manifest's authorization:, as JSON) says whether it may
call trailers (SHOAL_NAME); /healthz and /readyz answer any service of the
system (the supervisor probes them). The files are read again when they
change: a renewed certificate applies to new connections without a
restart. Without them (a manifest's plaintext: true) it serves plain HTTP
to anyone.
"""

import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE_PATH = re.compile(r"^/trailers/([1-9][0-9]{0,17})$")
PROBES = ("/healthz", "/readyz")  # passing checks are not logged; any caller of the system may ask
HANDSHAKE_TIMEOUT = 5  # seconds a client may take to complete the TLS handshake
draining = threading.Event()


class Identity:
    """The instance's certificate, key and trusted CAs, as files, with the
    TLS context made of them, rebuilt when the certificate or the bundle
    changes (the supervisor renews them in place, key first)."""

    def __init__(self, cert, key, bundle):
        self.cert, self.key, self.bundle = cert, key, bundle
        self.lock = threading.Lock()
        self.stamp = None
        self.ctx = None
        self.stamp_error = None
        self.context()  # a bad file stops the program at start

    def files_stamp(self):
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in map(os.stat, (self.cert, self.bundle)))

    def context(self):
        """The current context; on a failed reload the previous one stays."""
        with self.lock:
            try:
                stamp = self.files_stamp()
                if stamp != self.stamp:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
                    ctx.load_cert_chain(self.cert, self.key)
                    ctx.load_verify_locations(self.bundle)
                    ctx.verify_mode = ssl.CERT_REQUIRED
                    ctx.set_alpn_protocols(["http/1.1"])
                    self.ctx, self.stamp = ctx, stamp
                    if self.stamp_error is not None:
                        print("trailers: certificate loaded", flush=True)
                    self.stamp_error = None
            except (OSError, ssl.SSLError) as e:
                if self.ctx is None:
                    raise
                if str(e) != self.stamp_error:
                    print(f"trailers: reloading the certificate failed, keeping the current one: {e}", file=sys.stderr, flush=True)
                self.stamp_error = str(e)
            return self.ctx


def identity_from_env():
    names = ("SHOAL_IDENTITY_CERT", "SHOAL_IDENTITY_KEY", "SHOAL_IDENTITY_BUNDLE")
    files = [os.environ.get(n, "") for n in names]
    if not any(files):
        return None
    if not all(files):
        sys.exit("trailers: set all of " + ", ".join(names) + ", or none")
    return Identity(*files)


def caller_of(peercert):
    """The service in a verified certificate's spiffe://<system>/<service>
    URI SAN, or None."""
    uris = [v for k, v in peercert.get("subjectAltName", ()) if k == "URI"]
    if len(uris) != 1:
        return None
    m = re.fullmatch(r"spiffe://[a-z0-9._-]+/([a-z0-9._-]{1,63})", uris[0])
    return m.group(1) if m else None


def policy_from_env():
    """The callers SHOAL_POLICY allows to call this service, or None when
    every service of the system may."""
    raw = os.environ.get("SHOAL_POLICY", "")
    if not raw:
        return None
    allow = json.loads(raw)["allow"]
    me = os.environ.get("SHOAL_NAME", "trailers")
    return set(allow.get(me, [])) | set(allow.get("*", []))


class Handler(BaseHTTPRequestHandler):
    server_version = "flix-trailers/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as Shoal's client expects
    timeout = 120  # an idle keep-alive connection is closed after this

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)
        self.caller = None
        if isinstance(self.connection, ssl.SSLSocket):
            self.caller = caller_of(self.connection.getpeercert() or {})

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def forbidden(self, path):
        """Answers 403 and returns True when the caller may not call this
        path: over TLS, a service the policy does not name (health and
        readiness excepted)."""
        allowed = self.server.allowed
        if not isinstance(self.connection, ssl.SSLSocket) or path in PROBES or allowed is None:
            return False
        if self.caller in allowed or "*" in allowed:
            return False
        self.send_error_json(403, "forbidden", f"{self.caller} may not call trailers")
        return True

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if self.forbidden(path):
            return
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
        if self.forbidden(self.path.split("?", 1)[0]):
            return
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
        self.identity = None  # set by main: serve mutual TLS
        self.allowed = None  # the callers the policy allows; None: any

    def finish_request(self, request, client_address):
        """With an identity, the TLS handshake happens here, on the
        request's own thread, so that a slow client holds up no other."""
        if self.identity is None:
            return super().finish_request(request, client_address)
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            conn = self.identity.context().wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as e:
            print(f"trailers: TLS handshake with {client_address[0]}:{client_address[1]} failed: {e}", file=sys.stderr, flush=True)
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            self.shutdown_request(conn)

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
    httpd.identity = identity_from_env()
    if httpd.identity is not None:
        httpd.allowed = policy_from_env()

    def stop(signum, _frame):
        if draining.is_set():
            return
        draining.set()
        print(f"trailers: {signal.Signals(signum).name}, shutting down", flush=True)
        # shutdown() waits for serve_forever to return: not from its thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheme = "http" if httpd.identity is None else "https (mutual TLS)"
    print(f"trailers: serving on 127.0.0.1:{httpd.server_address[1]}, {scheme}", flush=True)
    start = time.monotonic()
    httpd.serve_forever()
    httpd.close_idle()
    httpd.server_close()  # joins the request threads
    print(f"trailers: stopped after {time.monotonic() - start:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
