"""A FAKE OpenAI-compatible chat endpoint for Assay's LLM tests. No LLM can run on the test
machines, so this stands in for one: it answers `POST /v1/chat/completions` by the TASK that
Assay's system prompt names (narrate, query, draft) with fixed replies built from what the
request carried, checks the bearer key, and appends every request it gets to LOG (one JSON
object per line) so the tests can check what Assay sent.

    python fake_llm.py PORT LOG KEY
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]

VALID = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: {name}
spec:
  steps:
  - name: checks
    shell: sh check.sh
"""


def reply(messages):
    system, user = messages[0]["content"], messages[-1]["content"]
    if "TASK: narrate" in system:
        found = re.search(r"class: (\S+)", user)
        return (f"The run failed as a {found.group(1) if found else 'mystery'}: "
                "start with the failing step's assertion.")
    if "TASK: query" in system:
        if "exploded" in user:
            return ('Sure: ```json\n{"subject": "executions", "statuses": ["failed"], '
                    '"limit": 5}\n```')
        return '{"workflow": "no-such-workflow"}'
    if "TASK: draft" in system:
        name = re.search(r"workflow name: (\S+)", messages[1]["content"]).group(1)
        tries = sum(1 for m in messages if m["role"] == "assistant")
        if tries == 0:
            # Not a DNS label: `assay validate` refuses it, and Assay must send that back.
            return "```yaml\n" + VALID.format(name="Bad Name!") + "```"
        if "never-valid" in messages[1]["content"]:
            return "kind: nothing"
        return "Fixed:\n```yaml\n" + VALID.format(name=name) + "```"
    return "?"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = json.loads(body)
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"path": self.path, "request": request}) + "\n")
        if self.path != "/v1/chat/completions":
            return self.send(404, {"error": {"message": "no such path"}})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.send(401, {"error": {"message": "Incorrect API key provided"}})
        text = reply(request["messages"])
        self.send(200, {"id": "fake", "object": "chat.completion", "model": request["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}]})

    def send(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
