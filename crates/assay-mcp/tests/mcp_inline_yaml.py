"""Issue 14 #1: running inline YAML is authoring. Over `assay server`'s `/mcp` (the official
MCP client SDK) and `/v1`, a runner token cannot run or store a workflow of its own text; it runs
what an admin stored, with config values. An admin may run inline YAML.

    python mcp_inline_yaml.py BASE_URL RUNNER_TOKEN ADMIN_TOKEN

Started by crates/assay-cli/tests/mcp.rs (`security_runner_cannot_run_inline_yaml`). Exits
non-zero on the first failed check.
"""

import asyncio
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

BASE, RUNNER, ADMIN = sys.argv[1], sys.argv[2], sys.argv[3]
URL = f"{BASE}/mcp"

# What the attack ran: a step that reads the server's admin token. Here it only echoes a
# marker; the point is that a runner's text never becomes a step.
ATTACK = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: attack
spec:
  steps:
    - name: read the admin token
      shell: echo ran-inline-yaml
"""

STORED = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: stored
spec:
  config:
    greeting: {type: string, default: hi}
  steps:
    - name: greet
      shell: echo "{{ config.greeting }} from stored"
"""


def check(cond, what, detail=""):
    if not cond:
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def is_error(result):
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


def client(token):
    timeout = httpx2.Timeout(30.0, read=300.0)
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


async def session_as(token, body):
    async with client(token) as http:
        async with streamable_http_client(URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await body(session)


async def as_admin_store(session):
    result = await session.call_tool("create_or_update_workflow", {"yaml": STORED})
    check(not is_error(result), "admin: stores a workflow", text_of(result))


async def as_runner(session):
    for args in ({"yaml": ATTACK}, {"yaml": ATTACK, "name": "attack"},
                 {"yaml": ATTACK, "wait": False}):
        result = await session.call_tool("run_workflow", args)
        text = text_of(result)
        check(is_error(result) and "permission denied" in text and "`admin`" in text
              and "`runner`" in text and "inline" in text,
              f"runner: run_workflow {sorted(args)} is refused, naming both roles", text)
        check("next: run a stored workflow by `name`" in text,
              "runner: the refusal says what a runner can do instead", text)
    result = await session.call_tool("list_executions", {})
    check(not is_error(result) and "attack" not in text_of(result),
          "runner: nothing was run by the refused calls", text_of(result))
    result = await session.call_tool("run_workflow", {
        "name": "stored", "config": {"greeting": "hello"}, "wait": True})
    text = text_of(result)
    check(not is_error(result) and "passed" in text,
          "runner: runs a stored workflow with config values", text)


async def as_admin_inline(session):
    result = await session.call_tool("run_workflow", {"yaml": ATTACK, "wait": True})
    text = text_of(result)
    check(not is_error(result) and "passed" in text, "admin: may run inline YAML", text)


async def rest_checks():
    headers = {"Authorization": f"Bearer {RUNNER}", "Content-Type": "application/yaml"}
    async with httpx2.AsyncClient(base_url=BASE, timeout=30.0, headers=headers) as http:
        for method, path in (("POST", "/v1/test-workflows"),
                             ("PUT", "/v1/test-workflows/stored"),
                             ("POST", "/v1/test-workflow-templates")):
            r = await http.request(method, path, content=ATTACK)
            check(r.status_code == 403 and "admin" in r.text,
                  f"runner: {method} {path} with YAML is 403", f"{r.status_code} {r.text}")
        r = await http.get("/v1/test-workflows/stored")
        check(r.status_code == 200 and "ran-inline-yaml" not in r.text,
              "runner: the stored workflow is unchanged", f"{r.status_code} {r.text}")
        # The run endpoint takes config values and tags; a document in the body is not run.
        r = await http.post("/v1/test-workflows/stored/executions",
                            json={"config": {"greeting": "hey"}, "yaml": ATTACK},
                            headers={"Content-Type": "application/json"})
        check(r.status_code == 200 and r.json()["workflow"]["name"] == "stored",
              "runner: POST …/executions runs the stored workflow only", f"{r.status_code} {r.text}")


async def main():
    await session_as(ADMIN, as_admin_store)
    await session_as(RUNNER, as_runner)
    await rest_checks()
    await session_as(ADMIN, as_admin_inline)
    print("all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
