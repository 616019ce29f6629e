"""Drive `assay mcp` over stdio with the official MCP client SDK (PyPI package `mcp`).

    python mcp_stdio.py ASSAY_BINARY DATA_DIR

Checks the tools an agent uses end to end: list the tools, validate a broken workflow (line
and column), store one, run a failing and a passing workflow, read the failure and a step's
logs, artifacts, abort a long run; then a scripted agent scenario measuring how many calls and
bytes it takes from "run the tests" to the failing assertion's message. Exits non-zero on the
first failed check.
"""

import asyncio
import json
import os
import subprocess
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ASSAY, DATA = sys.argv[1], sys.argv[2]

EXPECTED_TOOLS = {
    "list_workflows", "get_workflow", "validate_workflow", "create_or_update_workflow",
    "run_workflow", "wait_for_execution", "list_executions", "get_execution",
    "get_execution_logs", "list_artifacts", "read_artifact", "abort_execution",
    "get_test_results", "list_flaky_tests",
    "why_failed", "test_history", "compare_executions", "list_failures_since_last_pass",
    "ask", "draft_workflow",
    "list_quarantined_tests", "quarantine_test", "unquarantine_test",
    "insights",
    "evaluate_gate",
    "get_workflow_metrics", "wait_for_executions", "list_labels", "build_dashboard_url",
    "get_workflow_schema",
}

# A step whose JUnit report (written by the shell) has one failing test, `drift`.
QUARANTINE = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: clock
spec:
  steps:
    - name: tests
      shell: |
        mkdir -p reports
        printf '%s\\n' '<testsuites><testsuite name="clock" tests="2" failures="1">' \\
          '<testcase classname="clock" name="ticks"/>' \\
          '<testcase classname="clock" name="drift"><failure message="drifted 3s">x</failure></testcase>' \\
          '</testsuite></testsuites>' > reports/junit.xml
        exit 1
      artifacts:
        paths: ["reports/*.xml"]
"""

# A test whose assertion fails with a clear message (no pytest needed).
FAILING = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: unit
  labels:
    team: qa
spec:
  content:
    files:
      - path: /data/repo/test_math.py
        content: |
          print("collected 2 items")
          for i in range(40):
              print(f"test_noise_{i} ... ok")
          print("test_add ...")
          def add(a, b):
              return a + b + 1
          got = add(1, 2)
          assert got == 3, f"expected 3, got {got}"
  steps:
    - name: install
      shell: echo installing dependencies
    - name: tests
      steps:
        - name: run unit tests
          shell: python3 /data/repo/test_math.py
"""

PASSING = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: smoke
spec:
  steps:
    - name: check
      shell: |
        mkdir -p /data/out
        echo "all good" > /data/out/report.txt
        echo smoke passed
      artifacts:
        workingDir: /data/out
        paths: ["*.txt"]
"""

LONG = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: slow
spec:
  steps:
    - name: sleep
      shell: echo started; sleep 120
"""

# `shel` is a typo on line 8, column 7.
BROKEN = """apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: broken
spec:
  steps:
    - name: oops
      shel: echo hi
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


class Agent:
    """A session that counts calls and answer bytes."""

    def __init__(self, session):
        self.session = session
        self.calls = 0
        self.bytes = 0

    async def call(self, name, args=None):
        result = await self.session.call_tool(name, args or {})
        text = text_of(result)
        self.calls += 1
        self.bytes += len(text.encode())
        return text, is_error(result)


def raw_stdout_is_only_json_rpc():
    """stdout carries nothing but JSON-RPC: every line a JSON object with "jsonrpc"."""
    proc = subprocess.Popen(
        [ASSAY, "mcp", "--data-dir", DATA],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    out, err = proc.communicate("".join(json.dumps(m) + "\n" for m in msgs), timeout=60)
    lines = [l for l in out.splitlines() if l.strip()]
    check(len(lines) >= 2, "raw: an answer to initialize and tools/list", out + err)
    for l in lines:
        check(json.loads(l).get("jsonrpc") == "2.0", "raw: a stdout line is JSON-RPC", l)
    init = json.loads(lines[0])["result"]
    check(init["serverInfo"]["name"] == "assay", "raw: server name is assay", lines[0])
    check("serving MCP" in err, "raw: the banner goes to stderr", err)


async def main():
    raw_stdout_is_only_json_rpc()
    params = StdioServerParameters(command=ASSAY, args=["mcp", "--data-dir", DATA])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            agent = Agent(session)

            # -- tools and their schemas
            tools = (await session.list_tools()).tools
            names = {t.name for t in tools}
            check(names == EXPECTED_TOOLS, "the expected tools are listed", sorted(names))
            for t in tools:
                schema = getattr(t, "input_schema", None) or getattr(t, "inputSchema", None)
                check(schema.get("type") == "object" and t.description,
                      f"{t.name} has a description and an object schema", schema)
            run_schema = next(
                getattr(t, "input_schema", None) or getattr(t, "inputSchema") for t in tools
                if t.name == "run_workflow")
            for field in ("name", "yaml", "config", "tags", "wait", "timeout_seconds"):
                check(field in run_schema["properties"], f"run_workflow takes `{field}`",
                      run_schema)

            # -- an empty store says what to do
            text, err = await agent.call("list_workflows")
            check(not err and "no stored workflows" in text and "create_or_update_workflow" in text,
                  "an empty list says how to add one", text)

            # -- validate a broken workflow: line and column
            text, err = await agent.call("validate_workflow", {"yaml": BROKEN})
            check(not err and text.startswith("invalid"), "broken YAML is reported invalid", text)
            check("line 8, column 7" in text and "shell" in text,
                  "the problem has its line, column and a did-you-mean", text)
            text, err = await agent.call("validate_workflow", {"yaml": FAILING})
            check(not err and text.startswith("valid"), "a good workflow validates", text)

            # -- store: created, unchanged, updated; invalid stores nothing
            text, err = await agent.call("create_or_update_workflow", {"yaml": BROKEN})
            check(err and "line 8, column 7" in text and "nothing was stored" in text,
                  "storing invalid YAML is a tool error with the location", text)
            text, err = await agent.call("create_or_update_workflow", {"yaml": FAILING})
            check(not err and "created, revision 1" in text and "run_workflow" in text,
                  "a workflow is created at revision 1", text)
            text, err = await agent.call("create_or_update_workflow", {"yaml": FAILING})
            check(not err and "unchanged" in text, "the same text stores nothing", text)
            text, err = await agent.call(
                "create_or_update_workflow", {"yaml": FAILING.replace("team: qa", "team: core")})
            check(not err and "updated, revision 2" in text, "a change is revision 2", text)
            text, err = await agent.call("get_workflow", {"name": "unit"})
            check(not err and "revision 2" in text and "test_math.py" in text,
                  "get_workflow answers the YAML", text)
            text, err = await agent.call("get_workflow", {"name": "unti"})
            check(err and "did you mean `unit`" in text, "a typo gets a did-you-mean", text)

            # -- run the failing workflow and read the failure
            text, err = await agent.call("run_workflow", {"name": "unit", "wait": True,
                                                          "tags": {"commit": "abc123"}})
            check(not err and "unit-1 failed" in text, "the failing run fails", text)
            check("failed step: run unit tests (ref " in text and "exit code 1" in text,
                  "the answer names the failing step and its exit code", text)
            check(ASSERTION in text, "the answer holds the assertion message", text)
            check("get_execution_logs" in text, "the answer says what to call next", text)
            check(len(text.encode()) < 4096, "the failure answer is under 4 KB",
                  str(len(text.encode())))
            step_ref = text.split("failed step: run unit tests (ref ")[1].split(")")[0]

            text, err = await agent.call("get_execution_logs",
                                         {"execution": "unit-1", "step": step_ref, "tail": 3})
            check(not err and ASSERTION in text and "showing the last 3" in text,
                  "the step's last lines", text)
            text, err = await agent.call("get_execution_logs",
                                         {"execution": "unit-1", "step": "run unit tests",
                                          "grep": "noise_1[0-9]"})
            check(not err and "10 of " in text and "test_noise_15" in text,
                  "grep by step name", text)
            text, err = await agent.call("get_execution_logs",
                                         {"execution": "unit-1", "step": "unit tsts"})
            check(err and "steps:" in text, "an unknown step lists the steps", text)
            text, err = await agent.call("get_execution_logs",
                                         {"execution": "unit-1", "grep": "("})
            check(err and "regular expression" in text, "a bad pattern is a tool error", text)
            text, err = await agent.call("get_execution", {"execution": "unit-1"})
            check(not err and "steps (status" in text and "commit=abc123" in text
                  and ASSERTION in text, "get_execution shows steps, tags and the failure", text)

            # -- a passing inline workflow with an artifact
            text, err = await agent.call("run_workflow", {"yaml": PASSING})
            check(not err and "smoke-1 passed" in text, "the inline run passes", text)
            text, err = await agent.call("list_artifacts", {"execution": "smoke-1"})
            check(not err and "report.txt" in text, "the artifact is listed", text)
            text, err = await agent.call("read_artifact",
                                         {"execution": "smoke-1", "path": "report.txt"})
            check(not err and "all good" in text, "the artifact is read", text)
            text, err = await agent.call("read_artifact",
                                         {"execution": "smoke-1", "path": "reprt.txt"})
            check(err and "did you mean `report.txt`" in text, "a wrong path gets a hint", text)

            text, err = await agent.call("list_executions", {"status": "failed"})
            check(not err and "unit-1" in text and "smoke-1" not in text,
                  "list_executions filters by status", text)
            text, err = await agent.call("list_executions", {"workflow": "smoke", "limit": 5})
            check(not err and "smoke-1" in text and "unit-1" not in text,
                  "list_executions filters by workflow", text)
            text, err = await agent.call("run_workflow", {"name": "unti"})
            check(err and "did you mean `unit`" in text and "stored workflows:" in text,
                  "running an unknown workflow names those that exist", text)
            text, err = await agent.call("get_execution", {"execution": "unit-9"})
            check(err and "no execution `unit-9`" in text, "an unknown execution", text)
            text, err = await agent.call("run_workflow", {"yaml": BROKEN})
            check(err and "line 8, column 7" in text, "running broken YAML runs nothing", text)

            # -- abort a long run
            started = time.monotonic()
            text, err = await agent.call("run_workflow", {"yaml": LONG, "wait": False})
            check(not err and "started slow-1" in text and "wait_for_execution" in text,
                  "wait=false answers at once", text)
            text, err = await agent.call("wait_for_execution",
                                         {"execution": "slow-1", "timeout_seconds": 1})
            check(not err and "still running" in text and "abort_execution" in text,
                  "a short wait says the run goes on", text)
            text, err = await agent.call("abort_execution", {"execution": "slow-1"})
            check(not err and "slow-1 aborted" in text, "the long run is aborted", text)
            check(time.monotonic() - started < 60, "the abort did not wait for the sleep")
            text, err = await agent.call("abort_execution", {"execution": "slow-1"})
            check(not err and "already ended" in text, "aborting twice is harmless", text)

            # -- the overview tools: metrics, waiting for several, labels, dashboard URLs
            text, err = await agent.call("get_workflow_metrics", {"workflow": "unit"})
            check(not err and "pass rate: 0% (0 of 1 ended)" in text
                  and "newest first: F" in text and "why_failed" in text,
                  "get_workflow_metrics answers the pass rate and the strip", text)
            text, err = await agent.call("get_workflow_metrics", {"workflow": "nobody"})
            check(err and "no execution of `nobody`" in text, "metrics of nothing", text)
            text, err = await agent.call("wait_for_executions",
                                         {"executions": ["unit-1", "smoke-1", "slow-1"]})
            check(not err and "all 3 ended" in text and "unit-1 (unit) failed" in text
                  and "smoke-1 (smoke) passed" in text and "slow-1 (slow) aborted" in text,
                  "wait_for_executions answers one line each", text)
            text, err = await agent.call("wait_for_executions", {"executions": []})
            check(err and "1 to 20" in text, "waiting for nothing is a tool error", text)
            text, err = await agent.call("list_labels")
            check(not err and "team: core" in text, "list_labels answers keys and values", text)
            text, err = await agent.call("build_dashboard_url", {"execution": "unit-1"})
            check(not err and text.startswith("/executions/") and "stdio" in text,
                  "on stdio the dashboard URL is a path", text)
            text, err = await agent.call("build_dashboard_url", {"page": "nope"})
            check(err and "unknown page" in text, "an unknown page is a tool error", text)

            # -- the schema of what to write
            text, err = await agent.call("get_workflow_schema", {})
            check(not err and text.startswith("TestWorkflow (apiVersion testworkflows.testkube.io/v1)")
                  and "spec.steps: object[]" in text and len(text.encode()) < 6200,
                  "get_workflow_schema answers the fields, bounded", text)
            text, err = await agent.call("get_workflow_schema", {"path": "spec.steps"})
            check(not err and "spec.steps.shell: string" in text, "a path zooms in", text)
            text, err = await agent.call("get_workflow_schema", {"path": "spec.stepz"})
            check(err and "no field `stepz`" in text and "steps" in text,
                  "an unknown path names the fields there", text)
            text, err = await agent.call("get_workflow_schema", {"kind": "TestTrigger"})
            check(not err and "tests.testkube.io/v1" in text, "the trigger's schema", text)

            # -- questions in plain words
            text, err = await agent.call("ask", {"question": "failed executions of unit"})
            check(not err and text.startswith("query: ") and "unit-1" in text
                  and "smoke-1" not in text, "ask answers with the query it understood", text)
            text, err = await agent.call("ask", {"question": "failed bananas of unit"})
            check(err and "bananas" in text, "ask names the words it does not know", text)

            # -- drafting workflows from a listing the agent sends (nothing read on the server)
            listing = {
                "files": ["pyproject.toml", "tests/test_api.py", "tests/test_cart.py",
                          "package.json", "package-lock.json", "src/app.js"],
                "contents": {"pyproject.toml": "[tool.pytest.ini_options]\n",
                             "package.json": '{"devDependencies": {"jest": "29"}}'},
                "name": "Shop", "repo": "/srv/shop",
            }
            text, err = await agent.call("draft_workflow", listing)
            check(not err and "found pytest: pyproject.toml" in text and "found jest:" in text,
                  "draft_workflow names the tools and why", text)
            drafted = text.split("\n---\n", 1)[1] if "\n---\n" in text else ""
            check("name: shop-pytest" in drafted and "/srv/shop" in drafted,
                  "the drafts are named after the project and run in its folder", text)
            text, err = await agent.call("validate_workflow", {"yaml": drafted})
            check(not err and "valid" in text and "line " not in text,
                  "the drafted workflows validate", text)
            text, err = await agent.call("draft_workflow", {"files": ["README.md"]})
            check(err and "no test tool found" in text and "pytest" in text,
                  "a listing without tests says what is looked for", text)
            text, err = await agent.call("draft_workflow", {"files": ["a.py"], "shards": 0})
            check(err and "between 1 and 64" in text, "bad shards are a tool error", text)

            # -- quarantine: a quarantined failure does not fail the run, and the answer says so
            text, err = await agent.call("create_or_update_workflow", {"yaml": QUARANTINE})
            check(not err, "the quarantine workflow is stored", text)
            text, err = await agent.call("run_workflow", {"name": "clock", "wait": True})
            check(not err and "failed" in text.split("\n")[0], "clock fails before quarantine", text)
            text, err = await agent.call("quarantine_test",
                                         {"test": "clock::drift", "workflow": "clock", "reason": " "})
            check(err and "reason" in text, "quarantine_test refuses an empty reason", text)
            text, err = await agent.call("quarantine_test",
                                         {"test": "clock::drift", "workflow": "clock",
                                          "reason": "r", "until": "soon"})
            check(err and "is not a date" in text, "quarantine_test refuses a bad date", text)
            text, err = await agent.call("quarantine_test",
                                         {"test": "clock::drift", "workflow": "clock",
                                          "reason": "JIRA-9: NTP on the runners",
                                          "until": "2999-01-01"})
            check(not err and "quarantined `clock::drift`" in text, "quarantine_test answers", text)
            text, err = await agent.call("list_quarantined_tests")
            check(not err and "clock::drift (clock) until 2999-01-01" in text
                  and "JIRA-9" in text, "list_quarantined_tests lists it", text)
            text, err = await agent.call("run_workflow", {"name": "clock", "wait": True})
            check(not err and "passed" in text.split("\n")[0]
                  and "quarantined failures (they did not fail the run): clock::drift" in text,
                  "a quarantined failure passes the run and the answer says so", text)
            text, err = await agent.call("get_test_results", {"execution": "clock-2"})
            check(not err and "failed clock::drift" in text and "(quarantined)" in text
                  and "quarantined failures (they did not fail the run): 1" in text,
                  "get_test_results marks the quarantined failure", text)
            text, err = await agent.call("unquarantine_test",
                                         {"test": "clock::drift", "workflow": "clock"})
            check(not err and "lifted" in text, "unquarantine_test answers", text)
            text, err = await agent.call("unquarantine_test",
                                         {"test": "clock::drift", "workflow": "clock"})
            check(err and "not quarantined" in text, "lifting twice names what is missing", text)
            text, err = await agent.call("run_workflow", {"name": "clock", "wait": True})
            check(not err and "failed" in text.split("\n")[0], "lifted: clock fails again", text)

            # -- quality gates: the failing run fails the gate with its evidence, the
            # quarantined run passes it, bad rules are a tool error with their place
            text, err = await agent.call("evaluate_gate",
                                         {"rules": "rules: {noFailingTests: true}",
                                          "execution": "clock-3"})
            check(not err and "FAIL  noFailingTests: 1 test of 2 failing" in text
                  and "clock::drift (clock-3): drifted 3s" in text
                  and 'why_failed {"execution":"clock-3"}' in text,
                  "evaluate_gate fails on a failing test and names it", text)
            text, err = await agent.call("evaluate_gate",
                                         {"rules": "rules: {noFailingTests: true}",
                                          "execution": "clock-2"})
            check(not err and "gate passed" in text and "quarantined, not counted: clock::drift" in text,
                  "evaluate_gate leaves out the quarantined failure and says so", text)
            text, err = await agent.call("evaluate_gate",
                                         {"rules": "rules:\n  noFlakes: true\n", "execution": "clock-3"})
            check(err and "noFlakes" in text and "line 2, column 3" in text and "noNewFlakyTests" in text,
                  "evaluate_gate: an unknown rule is an error with its place and the rules", text)
            text, err = await agent.call("evaluate_gate",
                                         {"rules": "rules: {noSecrets: true}", "commit": "nope"})
            check(err and "no execution is tagged commit=nope" in text,
                  "evaluate_gate: an unknown commit is named", text)

            # -- the scripted agent scenario: "run the tests" -> the failing assertion
            scenario = Agent(session)
            text, _ = await scenario.call("list_workflows")
            name = "unit" if "unit  rev" in text else None
            check(name is not None, "scenario: the workflow is found in the list", text)
            text, _ = await scenario.call("run_workflow", {"name": name, "wait": True})
            found = ASSERTION in text
            while not found and scenario.calls < 6:
                ref = text.split("ref ")[1].split(")")[0] if "ref " in text else None
                text, _ = await scenario.call(
                    "get_execution_logs", {"execution": "unit-2", "step": ref, "grep": "Error"})
                found = ASSERTION in text
            print(f"AGENT SCENARIO: {scenario.calls} calls, {scenario.bytes} bytes "
                  f"from 'run the tests' to '{ASSERTION}' (goal: 2 calls, under 4096 bytes)")
            check(found, "scenario: the failing assertion's message is found", text)

            # -- the verdict scenario: "run the tests" -> the cause (class and evidence)
            verdict = Agent(session)
            text, _ = await verdict.call("run_workflow", {"name": "unit", "wait": True})
            check("why_failed" in text, "a failed run's answer points at why_failed", text)
            execution = text.split(" failed")[0].split()[-1]
            text, _ = await verdict.call("why_failed", {"execution": execution})
            cls = text.split("class: ")[1].split()[0] if "class: " in text else None
            print(f"VERDICT SCENARIO: {verdict.calls} calls, {verdict.bytes} bytes "
                  f"from 'run the tests' to the class ({cls}) and evidence "
                  f"(goal: 2 calls, under 4096 bytes)")
            check(cls is not None and ASSERTION in text,
                  "verdict scenario: the class and the failing assertion as evidence", text)
            check(verdict.calls == 2 and verdict.bytes < 4096,
                  "verdict scenario: two calls under 4 KB", f"{verdict.calls} {verdict.bytes}")
            print(f"all checks passed ({agent.calls} tool calls in the functional part)")


asyncio.run(main())
