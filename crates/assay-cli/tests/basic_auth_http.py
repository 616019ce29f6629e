"""A static HTTP server on 127.0.0.1 that answers only requests carrying one Basic credential.

Usage: basic_auth_http.py DIR USER PASSWORD. Serves DIR (the tests put a bare git repository
there, after `git update-server-info`: git's dumb HTTP protocol) on a free port, prints the port
on stdout, and answers 401 with a Basic challenge to any request without the credential.
"""

import base64
import functools
import http.server
import sys

directory, user, password = sys.argv[1:4]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, fmt, *args):
        sys.stderr.write(fmt % args + "\n")


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=directory)
)
print(server.server_address[1], flush=True)
server.serve_forever()
