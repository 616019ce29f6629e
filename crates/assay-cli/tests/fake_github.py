#!/usr/bin/env python3
"""A FAKE of GitHub's REST API (the pull request endpoints), for Assay's tests.

No GitHub can be reached from the machines Assay is built on, so the `git-pull-request`
trigger tests talk to this instead. It is NOT GitHub: it keeps pull requests in memory and
answers the two calls the trigger makes, the way GitHub's documentation says they answer:

* `GET /repos/OWNER/REPO/pulls?state=open|closed|all&sort=updated|created&direction=desc&per_page=N&page=P`
  (pages of at most `--max-per-page`, GitHub's 100 by default, with a `Link` header naming
  `rel="next"` while there are more);
* `GET /repos/OWNER/REPO/pulls/NUMBER/files?per_page=N&page=P` (`[{"filename": ...}]`, paged so).

Times are whole seconds (`2026-12-07T06:00:00Z`), as GitHub's are. With `--token T` every API
request needs `Authorization: Bearer T` (401 otherwise, like a private repository).

The control channel (plain HTTP):

* `POST /fake/pull` with `{"number", "state", "title", "head": {"ref", "sha"}, "base": {"ref"},
  "user", "files": [...]}`: create or change one pull request; `updated_at` becomes now
  (`created_at` too for a new one);
* `POST /fake/misbehave` with `{"mode": M, "times": N}`: the next N API requests answer badly:
  `ratelimit` (403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset` two seconds ahead),
  `retry-after` (429 with `Retry-After: 2`), `huge` (a 9 MiB list, without Content-Length),
  `slow` (the reply after 10 seconds), `malformed` (a JSON list cut short), `error` (500),
  `redirect` (302 to `/elsewhere`), `echo` (500 whose body is the request's `Authorization`);
* `GET /fake/requests`: every API request so far, `[{"path", "authorization"}]`.

Usage: fake_github.py [--port P] [--token T] [--max-per-page N]; it prints
`FAKE_GITHUB http://127.0.0.1:PORT` once it listens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
PULLS: dict[str, dict[int, dict]] = {}  # "owner/repo" -> number -> pull request
FILES: dict[str, dict[int, list[str]]] = {}
REQUESTS: list[dict] = []
MISBEHAVE: dict = {'mode': None, 'times': 0}
ARGS = argparse.Namespace()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, code: int, body: object, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        body = json.loads(self.rfile.read(length) or b'{}')
        if self.path == '/fake/pull':
            repo = body.pop('repo', 'acme/app')
            files = body.pop('files', None)
            with LOCK:
                pulls = PULLS.setdefault(repo, {})
                old = pulls.get(body['number'])
                stamp = now()
                pull = {
                    'number': body['number'],
                    'state': body.get('state', 'open'),
                    'title': body.get('title', f"pull request {body['number']}"),
                    'html_url': f"https://github.com/{repo}/pull/{body['number']}",
                    'created_at': old['created_at'] if old else stamp,
                    'updated_at': stamp,
                    'head': body.get('head') or (old or {}).get('head'),
                    'base': body.get('base') or (old or {}).get('base') or {'ref': 'main'},
                    'user': {'login': body.get('user', 'octocat')},
                    'draft': False,
                }
                pulls[body['number']] = pull
                if files is not None:
                    FILES.setdefault(repo, {})[body['number']] = files
            self.reply(200, pull)
        elif self.path == '/fake/misbehave':
            with LOCK:
                MISBEHAVE['mode'] = body['mode']
                MISBEHAVE['times'] = body.get('times', 1)
            self.reply(200, MISBEHAVE)
        else:
            self.reply(404, {'message': 'Not Found'})

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == '/fake/requests':
            with LOCK:
                self.reply(200, REQUESTS)
            return
        with LOCK:
            REQUESTS.append({'path': self.path, 'authorization': self.headers.get('Authorization')})
            mode = MISBEHAVE['mode'] if MISBEHAVE['times'] > 0 else None
            if mode:
                MISBEHAVE['times'] -= 1
        if ARGS.token and self.headers.get('Authorization') != f"Bearer {ARGS.token}":
            self.reply(401, {'message': 'Requires authentication'})
            return
        if mode == 'echo':
            self.reply(500, {'message': f"bad credentials: {self.headers.get('Authorization')}"})
            return
        if mode and self.misbehave(mode):
            return
        parts = url.path.strip('/').split('/')
        query = dict(urllib.parse.parse_qsl(url.query))
        per_page = min(int(query.get('per_page', 30)), ARGS.max_per_page)
        page = int(query.get('page', 1))
        if len(parts) == 4 and parts[0] == 'repos' and parts[3] == 'pulls':
            repo = f"{parts[1]}/{parts[2]}"
            with LOCK:
                items = list(PULLS.get(repo, {}).values())
            state = query.get('state', 'open')
            if state != 'all':
                items = [p for p in items if p['state'] == state]
            key = 'created_at' if query.get('sort', 'created') == 'created' else 'updated_at'
            items.sort(key=lambda p: (p[key], p['number']), reverse=query.get('direction', 'desc') == 'desc')
        elif len(parts) == 6 and parts[0] == 'repos' and parts[3] == 'pulls' and parts[5] == 'files':
            repo = f"{parts[1]}/{parts[2]}"
            with LOCK:
                items = [{'filename': f, 'status': 'modified'} for f in FILES.get(repo, {}).get(int(parts[4]), [])]
        else:
            self.reply(404, {'message': 'Not Found'})
            return
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            nxt = dict(query, page=str(page + 1))
            headers['Link'] = f'<http://{self.headers.get("Host")}{url.path}?{urllib.parse.urlencode(nxt)}>; rel="next"'
        self.reply(200, chunk, headers)

    def misbehave(self, mode: str) -> bool:
        if mode == 'ratelimit':
            self.reply(403, {'message': 'API rate limit exceeded'}, {
                'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0',
                'x-ratelimit-reset': str(int(time.time()) + 2)})
        elif mode == 'retry-after':
            self.reply(429, {'message': 'You have exceeded a secondary rate limit'}, {'Retry-After': '2'})
        elif mode == 'huge':
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Connection', 'close')
            self.end_headers()
            self.close_connection = True
            item = json.dumps({'number': 1, 'title': 'x' * 1000}).encode()
            try:
                self.wfile.write(b'[')
                for _ in range(9 * 1024):
                    self.wfile.write(item + b',')
                self.wfile.write(item + b']')
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif mode == 'slow':
            time.sleep(10)
            try:
                self.reply(200, [])
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif mode == 'malformed':
            data = b'[{"number": 7, "state": "open", "head": {"ref": "x"'
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif mode == 'redirect':
            self.send_response(302)
            self.send_header('Location', f"http://{self.headers.get('Host')}/elsewhere")
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif mode == 'error':
            self.reply(500, {'message': 'Server Error'})
        else:
            return False
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--token', default=None)
    parser.add_argument('--max-per-page', type=int, default=100)
    parser.parse_args(namespace=ARGS)
    server = ThreadingHTTPServer(('127.0.0.1', ARGS.port), Handler)
    server.daemon_threads = True
    print(f"FAKE_GITHUB http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == '__main__':
    main()
