"""Drive `assay server`'s MCP endpoint (`/mcp`, streamable HTTP) with the official MCP client
SDK (PyPI package `mcp`).

    python mcp_http.py BASE_URL VIEWER_TOKEN RUNNER_TOKEN ADMIN_TOKEN

The server is started by the Rust test (crates/assay-cli/tests/mcp.rs) with a temp data dir
and the three tokens. Checks: a viewer lists the tools and reads; a viewer's run_workflow is
refused with a clear message; an admin stores a failing workflow, a runner runs it and reads its
failure (inline YAML is an admin's: mcp_inline_yaml.py); no token
is 401; a host name that is not allowed is refused. Exits non-zero on the first failed check.
"""

import asyncio
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

BASE, VIEWER, RUNNER, ADMIN = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
URL = f"{BASE}/mcp"

FAILING = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: unit
spec:
  steps:
    - name: run unit tests
      shell: |
        echo "test_add ..."
        echo "AssertionError: expected 3, got 4"
        exit 1
"""

ASSERTION = "AssertionError: expected 3, got 4"


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


async def as_viewer(session):
    tools = {t.name for t in (await session.list_tools()).tools}
    check({"list_workflows", "run_workflow", "get_execution_logs"} <= tools,
          "viewer: the tools are listed over HTTP", sorted(tools))
    result = await session.call_tool("list_workflows", {})
    check(not is_error(result), "viewer: list_workflows answers", text_of(result))
    result = await session.call_tool("validate_workflow", {"yaml": FAILING})
    check(not is_error(result) and text_of(result).startswith("valid"),
          "viewer: validate_workflow answers", text_of(result))
    result = await session.call_tool("draft_workflow", {
        "files": ["go.mod", "cart/cart_test.go", "../../etc/passwd"],
        "contents": {"go.mod": "module shop\n"}})
    check(not is_error(result) and "found go: go.mod" in text_of(result)
          and "root:" not in text_of(result),
          "viewer: draft_workflow answers from the listing alone", text_of(result))
    result = await session.call_tool("build_dashboard_url", {"page": "executions"})
    check(not is_error(result) and text_of(result).strip() == BASE.rstrip("/") + "/executions",
          "viewer: build_dashboard_url is on the server this session reached", text_of(result))
    result = await session.call_tool("run_workflow", {"name": "unit"})
    text = text_of(result)
    check(is_error(result) and "permission denied" in text and "runner" in text
          and "viewer" in text, "viewer: run_workflow is refused, naming both roles", text)
    result = await session.call_tool("run_workflow", {"yaml": FAILING})
    text = text_of(result)
    check(is_error(result) and "permission denied" in text and "`admin`" in text
          and "viewer" in text, "viewer: run_workflow with inline yaml is refused", text)
    result = await session.call_tool("create_or_update_workflow", {"yaml": FAILING})
    text = text_of(result)
    check(is_error(result) and "admin" in text,
          "viewer: create_or_update_workflow is refused (needs admin)", text)
    result = await session.call_tool("list_executions", {})
    check(not is_error(result) and "unit-" not in text_of(result),
          "viewer: nothing was run by the refused call", text_of(result))
    result = await session.call_tool("list_quarantined_tests", {})
    check(not is_error(result) and "unit::flaky" in text_of(result),
          "viewer: list_quarantined_tests reads", text_of(result))
    for tool, args in (("quarantine_test", {"test": "t", "reason": "r"}),
                       ("unquarantine_test", {"test": "unit::flaky"})):
        result = await session.call_tool(tool, args)
        text = text_of(result)
        check(is_error(result) and "permission denied" in text and "`admin`" in text,
              f"viewer: {tool} is refused (needs admin)", text)


async def as_runner(session):
    result = await session.call_tool("create_or_update_workflow", {"yaml": FAILING})
    check(is_error(result) and "`admin`" in text_of(result) and "`runner`" in text_of(result),
          "runner: create_or_update_workflow is refused (needs admin)", text_of(result))
    result = await session.call_tool("run_workflow", {"name": "unit", "wait": True})
    text = text_of(result)
    check(not is_error(result) and "failed" in text, "runner: the failing run fails", text)
    check("failed step: run unit tests" in text and "exit code 1" in text
          and ASSERTION in text, "runner: the answer names the step, exit code and error", text)
    execution = text.split()[0]
    result = await session.call_tool("get_execution", {"execution": execution})
    check(not is_error(result) and ASSERTION in text_of(result),
          f"runner: get_execution {execution} reads the failure", text_of(result))
    result = await session.call_tool("get_execution_logs",
                                     {"execution": execution, "grep": "AssertionError"})
    check(not is_error(result) and ASSERTION in text_of(result),
          "runner: get_execution_logs greps the assertion", text_of(result))


async def as_admin(session):
    result = await session.call_tool("create_or_update_workflow", {"yaml": FAILING})
    check(not is_error(result), "admin: stores the workflow", text_of(result))
    result = await session.call_tool("quarantine_test",
                                     {"test": "unit::flaky", "reason": "JIRA-3"})
    check(not is_error(result), "admin: quarantine_test", text_of(result))


async def as_runner_quarantine(session):
    result = await session.call_tool("quarantine_test", {"test": "t", "reason": "r"})
    check(is_error(result) and "`admin`" in text_of(result) and "`runner`" in text_of(result),
          "runner: quarantine_test is refused (needs admin)", text_of(result))


async def raw_checks():
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30.0) as http:
        r = await http.post(URL, json=init, headers=headers)
        check(r.status_code == 401 and "assay token create" in r.text,
              "no token: 401 with a hint", f"{r.status_code} {r.text}")
        r = await http.post(URL, json=init,
                            headers={**headers, "Authorization": "Bearer nope"})
        check(r.status_code == 401, "an unknown token: 401", f"{r.status_code} {r.text}")
        r = await http.post(URL, json=init, headers={
            **headers, "Authorization": f"Bearer {VIEWER}", "Host": "evil.example"})
        check(400 <= r.status_code < 500, "a host name not allowed is refused",
              f"{r.status_code} {r.text}")
        r = await http.post(URL, json=init, headers={
            **headers, "Authorization": f"Bearer {VIEWER}", "Host": "assay.internal"})
        check(r.status_code == 200, "a host given with --allowed-host is accepted",
              f"{r.status_code} {r.text}")


async def main():
    await raw_checks()
    await session_as(ADMIN, as_admin)
    await session_as(VIEWER, as_viewer)
    await session_as(RUNNER, as_runner)
    await session_as(RUNNER, as_runner_quarantine)
    print("all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
