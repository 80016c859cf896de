# A program that does not use the Shoal SDK: it speaks HTTP on $PORT and is
# registered in discovery by the supervisor.
import http.server
import os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"web":"ok"}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("web listening on", os.environ["PORT"], "as", os.environ["SHOAL_INSTANCE"], flush=True)
server.serve_forever()
