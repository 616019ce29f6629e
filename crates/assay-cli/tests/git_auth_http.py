#!/usr/bin/env python3
"""A real HTTP server for git's dumb HTTP protocol that REQUIRES credentials.

Serves the files under --directory (bare repositories after `git update-server-info`) on
127.0.0.1, like `python3 -m http.server`, but only to requests carrying the one
`Authorization` header it was told to accept: `--basic USER:TOKEN` (HTTP basic auth) or
`--bearer TOKEN` (`Authorization: Bearer`). Anything else gets 401 with a
`WWW-Authenticate` challenge, as a private Git server answers. It prints `LISTENING PORT` on
stdout once it listens (`--port 0`: a free one), and each request's outcome on stderr
(`200 GET /app.git/info/refs` or `401 GET ... (missing|wrong)`), never the header itself.

Usage: git_auth_http.py --port P --directory DIR (--basic USER:TOKEN | --bearer TOKEN)
"""

from __future__ import annotations

import argparse
import base64
import functools
import hmac
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    expected = ''

    def log_message(self, format: str, *args: object) -> None:  # quiet: stdout says enough
        pass

    def check(self) -> bool:
        given = self.headers.get('Authorization')
        if given is not None and hmac.compare_digest(given.encode(), self.expected.encode()):
            return True
        why = 'missing' if given is None else 'wrong'
        print(f"401 {self.command} {self.path} ({why})", file=sys.stderr, flush=True)
        self.send_response(401)
        self.send_header('WWW-Authenticate', 'Basic realm="git"')
        self.send_header('Content-Length', '0')
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self.check():
            print(f"200 {self.command} {self.path}", file=sys.stderr, flush=True)
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.check():
            super().do_HEAD()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--directory', required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--basic', help='USER:TOKEN')
    group.add_argument('--bearer', help='TOKEN')
    args = parser.parse_args()
    if args.basic is not None:
        Handler.expected = 'Basic ' + base64.b64encode(args.basic.encode()).decode()
    else:
        Handler.expected = 'Bearer ' + args.bearer
    handler = functools.partial(Handler, directory=args.directory)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', args.port), handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == '__main__':
    main()
