// Browser scenarios of the Assay dashboard, run by crates/assay-cli/tests/dashboard.rs against a
// real `assay server`. Environment: ASSAY_URL, ASSAY_ADMIN_TOKEN, ASSAY_VIEWER_TOKEN,
// ASSAY_SCREENSHOTS (a folder), ASSAY_TEST_CHROMIUM (default /usr/bin/chromium), ASSAY_BIN (the
// assay binary, for an agent), ASSAY_RUNNER_TOKEN_FILE (a runner token for it), ASSAY_MARKS (a
// folder the `flaky` workflow leaves its marks in).
// Exits non-zero on the first failed scenario.

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const base = required("ASSAY_URL");
const adminToken = required("ASSAY_ADMIN_TOKEN");
const viewerToken = required("ASSAY_VIEWER_TOKEN");
const shots = required("ASSAY_SCREENSHOTS");
const assayBin = required("ASSAY_BIN");
const runnerTokenFile = required("ASSAY_RUNNER_TOKEN_FILE");
const marks = required("ASSAY_MARKS");
mkdirSync(shots, { recursive: true });

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run through crates/assay-cli/tests/dashboard.rs)`);
  return value;
}

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

async function api(path, token = adminToken) {
  const response = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, `GET ${path}: ${response.status}`);
  return response.json();
}

async function post(path, body, token = adminToken) {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  assert.ok(response.ok, `POST ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

// Run `flaky` on `commit` through the API and wait for its end; returns the execution.
async function runFlaky(commit) {
  const queued = await post("/v1/test-workflows/flaky/executions", { config: { marks, commit }, tags: { commit } });
  return waitFor(`flaky on ${commit} to end`, async () => {
    const e = await api(`/v1/test-workflow-executions/${queued.id}`);
    return ["passed", "failed"].includes(e.result.status) ? e : null;
  });
}

async function waitFor(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function noHorizontalScroll(page, what) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  assert.ok(scroll <= inner + 1, `${what} scrolls sideways at ${inner}px: ${scroll}px wide`);
}

async function login(context, token) {
  const page = await context.newPage();
  await page.goto(base + "/");
  assert.match(new URL(page.url()).pathname, /^\/login$/, "an anonymous visit goes to /login");
  // Keyboard only: the token field has focus (autofocus; wait for it, so keystrokes typed
  // before the page settles are not lost); Enter submits.
  await page.waitForFunction(() => document.activeElement?.id === "token", null, { timeout: 10000 });
  await page.keyboard.type(token);
  await page.keyboard.press("Enter");
  await page.waitForURL(base + "/");
  return page;
}

const results = [];
async function scenario(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push(name);
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    console.log(`not ok - ${name}`);
    console.log(e && e.stack ? e.stack : e);
    throw e;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.ASSAY_TEST_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

let greetId;
let slowId;
try {
  const admin = await browser.newContext({ viewport: LAPTOP, acceptDownloads: true });
  let page;

  await scenario("login: anonymous visits redirect, a wrong token is refused, the cookie is HttpOnly and SameSite=Strict", async () => {
    const anon = await browser.newContext({ viewport: LAPTOP });
    const p = await anon.newPage();
    await p.goto(base + "/executions?status=failed");
    assert.equal(new URL(p.url()).pathname, "/login");
    assert.equal(new URL(p.url()).searchParams.get("next"), "/executions?status=failed");
    await shot(p, "login");
    await p.fill("#token", "assay_not-a-token");
    await p.click("button[type=submit]");
    await p.waitForSelector("p.error");
    assert.match(await p.textContent("p.error"), /unknown or revoked token/);
    await p.fill("#token", adminToken);
    await p.click("button[type=submit]");
    await p.waitForURL(base + "/executions?status=failed");
    const [cookie] = (await anon.cookies()).filter((c) => c.name === "assay_token");
    assert.ok(cookie, "the login sets assay_token");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.secure, false, "no Secure flag over plain http");
    // Unknown pages and bearer headers.
    const missing = await p.goto(base + "/workflows/no-such-workflow");
    assert.equal(missing.status(), 404);
    assert.match(await p.textContent("h1"), /404/);
    await shot(p, "error-404");
    const gone = await p.goto(base + "/executions/no-such-execution");
    assert.equal(gone.status(), 404);
    const bearer = await fetch(base + "/", { headers: { Authorization: `Bearer ${adminToken}` }, redirect: "manual" });
    assert.equal(bearer.status, 200, "a bearer header works too");
    await anon.close();
  });

  await scenario("workflows page: every workflow, labels, filters, keyboard", async () => {
    page = await login(admin, adminToken);
    assert.equal(await page.locator("tr[data-workflow]").count(), 3);
    assert.match(await page.textContent('tr[data-workflow="greet"]'), /team=qa/);
    assert.match(await page.textContent('tr[data-workflow="greet"]'), /never run/);
    // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    // Filter by label and by text (GET forms: no JavaScript needed).
    await page.goto(base + "/?label=team%3Dperf");
    assert.deepEqual(await page.locator("tr[data-workflow]").evaluateAll((rows) => rows.map((r) => r.dataset.workflow)), ["slow"]);
    await page.goto(base + "/?q=report");
    assert.deepEqual(await page.locator("tr[data-workflow]").evaluateAll((rows) => rows.map((r) => r.dataset.workflow)), ["greet"]);
    await page.goto(base + "/");
    await shot(page, "workflows-empty-history");
  });

  await scenario("run a workflow from the UI with typed config values; they reach the execution", async () => {
    const row = page.locator('tr[data-workflow="greet"]');
    // Open the Run form from the keyboard.
    await row.locator("summary").focus();
    await page.keyboard.press("Enter");
    const form = row.locator("form.run-form");
    await form.waitFor();
    assert.equal(await form.locator('input[name="config.times"]').getAttribute("type"), "number");
    assert.equal(await form.locator('input[name="config.loud"]').getAttribute("type"), "checkbox");
    assert.equal(await form.locator('input[name="config.token"]').getAttribute("type"), "password");
    assert.equal(await form.locator('input[name="config.who"]').inputValue(), "world", "defaults are filled in");
    await shot(page, "workflows-run-form");
    await form.locator('input[name="config.who"]').fill("Ada Lovelace");
    await form.locator('input[name="config.times"]').fill("3");
    await form.locator('input[name="config.loud"]').check();
    await form.locator('input[name="tags"]').fill("origin=browser");
    await Promise.all([page.waitForURL(/\/executions\/[0-9a-f-]{36}$/), form.locator("button[type=submit]").click()]);
    greetId = page.url().split("/").pop();
    await waitFor("greet to pass", async () => (await api(`/v1/test-workflow-executions/${greetId}`)).result.status === "passed");
    // The live page reloads itself when the execution ends; wait for the ended page.
    await page.waitForSelector("#execution:not([data-live]) #exec-status.s-passed", { timeout: 30000 });
    assert.equal(await page.textContent("#exec-status"), "passed");
    assert.equal(await page.textContent('td[data-config="who"]'), "Ada Lovelace");
    assert.equal(await page.textContent('td[data-config="times"]'), "3");
    assert.equal(await page.textContent('td[data-config="loud"]'), "true");
    assert.equal(await page.textContent('td[data-config="token"]'), "••••••", "sensitive values are masked");
    assert.deepEqual(await page.locator("#logs .line").allTextContents(), ["hello Ada Lovelace 1", "hello Ada Lovelace 2", "hello Ada Lovelace 3"]);
    const execution = await api(`/v1/test-workflow-executions/${greetId}`);
    assert.equal(execution.configParams.who.value, "Ada Lovelace");
    assert.equal(execution.configParams.times.value, "3");
    assert.equal(execution.tags.origin, "browser");
    assert.match(execution.runningContext.actor.name, /admin/);
    assert.equal(execution.runningContext.actor.type, "user");
    assert.equal(execution.runningContext.interface.type, "api");
    await shot(page, "execution-passed");
  });

  await scenario("log filter: as you type, and on the server without JavaScript", async () => {
    await page.fill("#log-filter", "Lovelace 2");
    const visible = await page.locator("#logs .line:visible").allTextContents();
    assert.deepEqual(visible, ["hello Ada Lovelace 2"]);
    await page.goto(`${base}/executions/${greetId}?q=lovelace%201`);
    assert.deepEqual(await page.locator("#logs .line").allTextContents(), ["hello Ada Lovelace 1"]);
  });

  await scenario("artifacts: download, inline text, and the HTML report sandboxed", async () => {
    await page.goto(`${base}/executions/${greetId}`);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.locator("table.artifacts tr", { hasText: "out.txt" }).locator("a[download]").click(),
    ]);
    assert.equal(download.suggestedFilename(), "out.txt");
    assert.equal(readFileSync(await download.path(), "utf8"), "report for Ada Lovelace\n");
    const text = await page.request.get(`${base}/executions/${greetId}/artifacts/artifacts/out.txt`);
    assert.equal(text.status(), 200);
    assert.match(text.headers()["content-type"], /^text\/plain/);
    const report = await page.request.get(`${base}/executions/${greetId}/artifacts/artifacts/report.html`);
    assert.equal(report.headers()["content-security-policy"], "sandbox");
    // Opened in the browser: its script cannot run in the dashboard's origin.
    const view = await admin.newPage();
    await view.goto(`${base}/executions/${greetId}/artifacts/artifacts/report.html`);
    assert.equal(await view.textContent("#r"), "Report");
    assert.ok(!(await view.title()).includes("assay_token"), "the report cannot read the login cookie");
    await shot(view, "artifact-report");
    await view.close();
  });

  await scenario("workflow page: history chart, schedule, highlighted definition", async () => {
    await page.goto(`${base}/workflows/greet`);
    assert.equal(await page.locator("#history-chart rect").count(), 1, "one bar per execution");
    assert.match(await page.textContent("#h-schedule + ul"), /0 6 \* \* 1-5/);
    assert.ok((await page.locator("pre.yaml span.k").count()) > 5, "keys are highlighted");
    assert.ok((await page.locator("pre.yaml span.x").count()) > 0, "expressions are highlighted");
    await shot(page, "workflow");
  });

  await scenario("live logs: lines arrive while the execution runs, without reloading", async () => {
    await page.goto(base + "/");
    const row = page.locator('tr[data-workflow="slow"]');
    await row.locator("summary").click();
    await Promise.all([page.waitForURL(/\/executions\/[0-9a-f-]{36}$/), row.locator("button[type=submit]").click()]);
    slowId = page.url().split("/").pop();
    await page.evaluate(() => { window.__samePage = true; });
    await page.waitForFunction(() => document.getElementById("exec-status").textContent === "running", null, { timeout: 30000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#logs .line")].some((l) => l.textContent === "tick 3"), null, { timeout: 30000 });
    const before = await page.locator('#logs pre[data-step] .line').count();
    await page.waitForFunction((n) => document.querySelectorAll("#logs pre[data-step] .line").length >= n + 3, before, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.__samePage), true, "the lines came without a reload");
    const lines = await page.locator("#logs .line").allTextContents();
    assert.deepEqual(lines.slice(0, 3), ["tick 1", "tick 2", "tick 3"], "no line twice, in order");
    await shot(page, "execution-running");
  });

  await scenario("abort a long execution from its page", async () => {
    await Promise.all([page.waitForURL(`${base}/executions/${slowId}`), page.click("button.danger")]);
    await waitFor("slow to be aborted", async () => (await api(`/v1/test-workflow-executions/${slowId}`)).result.status === "aborted");
    await page.waitForSelector("#execution:not([data-live]) #exec-status.s-aborted", { timeout: 30000 });
    assert.equal(await page.textContent("#exec-status"), "aborted");
    assert.equal(await page.locator("button.danger").count(), 0, "an ended execution has no Abort button");
    await shot(page, "execution-aborted");
  });

  await scenario("executions page: filters by workflow, status, tag and time", async () => {
    await page.goto(`${base}/executions`);
    assert.equal(await page.locator("table.executions tbody tr").count(), 2);
    await page.selectOption("#f-status", "aborted");
    await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
    assert.deepEqual(await page.locator("table.executions tbody th a").allTextContents(), ["slow-1"]);
    await page.goto(`${base}/executions?tag=origin%3Dbrowser&since=1h`);
    assert.deepEqual(await page.locator("table.executions tbody th a").allTextContents(), ["greet-1"]);
    await page.goto(`${base}/executions?workflow=greet`);
    assert.deepEqual(await page.locator("table.executions tbody th a").allTextContents(), ["greet-1"]);
    await page.goto(`${base}/executions`);
    await shot(page, "executions");
    await page.goto(base + "/");
    await shot(page, "workflows");
  });

  await scenario("rerun from the execution page", async () => {
    await page.goto(`${base}/executions/${greetId}`);
    await Promise.all([page.waitForURL((u) => /\/executions\/[0-9a-f-]{36}$/.test(u.pathname) && !u.pathname.endsWith(greetId)), page.click('form[action$="/rerun"] button')]);
    const rerunId = page.url().split("/").pop();
    const rerun = await waitFor("the rerun to end", async () => {
      const e = await api(`/v1/test-workflow-executions/${rerunId}`);
      return e.result.status === "passed" ? e : null;
    });
    await page.waitForSelector("#execution:not([data-live]) #exec-status.s-passed", { timeout: 30000 });
    assert.equal(rerun.configParams.who.value, "Ada Lovelace", "a rerun keeps the config");
  });

  await scenario("a viewer sees no run, abort or rerun buttons, and a forged POST is refused", async () => {
    const viewer = await browser.newContext({ viewport: LAPTOP });
    const p = await login(viewer, viewerToken);
    assert.match(await p.textContent(".who"), /watcher/);
    assert.equal(await p.locator("details.run").count(), 0, "no Run form");
    await p.goto(`${base}/workflows/greet`);
    assert.equal(await p.locator("details.run").count(), 0, "no Run form on the workflow page");
    await p.goto(`${base}/executions/${greetId}`);
    assert.equal(await p.locator(".actions button").count(), 0, "no Abort or Rerun");
    await shot(p, "viewer-execution");
    const before = (await api("/v1/test-workflow-executions")).results.length;
    const forged = await p.request.post(`${base}/workflows/greet/run`, { form: { "config.who": "Mallory" } });
    assert.equal(forged.status(), 403, "a viewer cannot run");
    const abort = await p.request.post(`${base}/executions/${greetId}/rerun`);
    assert.equal(abort.status(), 403, "a viewer cannot rerun");
    const restRun = await p.request.post(`${base}/v1/test-workflows/greet/executions`, { data: {} });
    assert.equal(restRun.status(), 403, "nor through /v1 with the cookie");
    assert.equal((await api("/v1/test-workflow-executions")).results.length, before, "nothing was queued");
    await viewer.close();
  });

  await scenario("phone width: every page fits without sideways scrolling", async () => {
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const p = await login(phone, adminToken);
    for (const [path, name] of [
      ["/", "phone-workflows"],
      ["/workflows/greet", "phone-workflow"],
      ["/executions", "phone-executions"],
      [`/executions/${greetId}`, "phone-execution"],
    ]) {
      await p.goto(base + path);
      await noHorizontalScroll(p, path);
      await shot(p, name);
    }
    await phone.close();
  });

  await scenario("dark colour scheme", async () => {
    const dark = await browser.newContext({ viewport: LAPTOP, colorScheme: "dark" });
    const p = await login(dark, adminToken);
    const background = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(background, "rgb(251, 251, 252)", "the dark palette applies");
    await shot(p, "dark-workflows");
    await p.goto(`${base}/executions/${greetId}`);
    await shot(p, "dark-execution");
    await dark.close();
  });

  let flakyFailed;
  await scenario("why it failed: a failed run's page names the failing step, its lines and that nothing passed before", async () => {
    flakyFailed = await runFlaky("c1");
    assert.equal(flakyFailed.result.status, "failed");
    const analysis = await api(`/v1/test-workflow-executions/${flakyFailed.id}/analysis`);
    await page.goto(`${base}/executions/${flakyFailed.id}`);
    const why = page.locator("#why");
    await why.waitFor();
    assert.equal(await why.locator("h2").textContent(), "Why it failed");
    assert.equal(await why.locator("[data-class]").getAttribute("data-class"), analysis.verdict.class);
    assert.match(await why.textContent(), new RegExp(`rule ${analysis.verdict.rule}`));
    assert.equal(await why.locator('a[href^="#log-"]').textContent(), "connect to the database");
    const lines = await why.locator("pre.why-lines .line").allTextContents();
    assert.deepEqual(lines, analysis.failingStep.lines);
    assert.ok(lines.some((l) => l.includes("connection refused by db:5432")), `the failing line is shown: ${lines}`);
    assert.match(await why.textContent(), /No passing execution of flaky to compare with\./);
    await shot(page, "execution-why-failed");
    // A passed execution has no such panel.
    await page.goto(`${base}/executions/${greetId}`);
    assert.equal(await page.locator("#why").count(), 0, "no panel on a passed run");
  });

  await scenario("insights: a change that failed then passed and one green at once, by workflow", async () => {
    assert.equal((await runFlaky("c1")).result.status, "passed", "the retry on c1 passes");
    writeFileSync(join(marks, "c2"), ""); // c2's first run finds its mark: green at once
    assert.equal((await runFlaky("c2")).result.status, "passed", "c2 passes at once");
    await page.goto(`${base}/insights`);
    await page.selectOption("#by", "workflow");
    await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
    assert.equal(new URL(page.url()).searchParams.get("by"), "workflow");
    const row = page.locator('table.insights tr[data-key="flaky"]');
    const cells = await row.locator("td").allTextContents();
    // Changes, executions, first try, runs until green, rework, failure classes.
    assert.deepEqual(cells.slice(0, 5), ["2", "3", "50%", "1.5", "0%"], `the flaky row: ${cells}`);
    assert.ok(cells[5].length > 1 && cells[5] !== "–", `the failed run's class is counted: ${cells[5]}`);
    assert.ok((await page.locator(".chart svg").count()) >= 1, "the charts are drawn");
    // The weekly chart is drawn at its own scale: its week labels are not stretched.
    const weekly = await page.locator("svg.weekly").evaluate((svg) => ({
      shown: svg.getBoundingClientRect().width,
      drawn: svg.viewBox.baseVal.width,
      label: svg.querySelector("text.axis")?.textContent,
    }));
    assert.ok(Math.abs(weekly.shown - weekly.drawn) < 1, `the weekly chart is not stretched: ${JSON.stringify(weekly)}`);
    assert.match(weekly.label ?? "", /^\d\d-\d\d$/, "a week's label");
    await shot(page, "insights");
    // A window that cannot be read is an error on the page, not a blank one.
    const bad = await page.goto(`${base}/insights?since=not-a-time`);
    assert.equal(bad.status(), 400);
    assert.equal(await page.locator('p.error[role="alert"]').count(), 1, "a bad window is explained");
  });

  await scenario("agents: none at first, then a runner agent connected with its labels", async () => {
    await page.goto(`${base}/agents`);
    assert.match(await page.textContent("#no-agents"), /No agent has connected/);
    const agent = spawn(assayBin, ["agent", "--server", base, "--token-file", runnerTokenFile, "--name", "browser-agent", "--label", "env=browser", "--label", "zone=b"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    agent.stderr.on("data", (d) => { stderr += d; });
    try {
      await waitFor("the agent to connect", async () => {
        await page.goto(`${base}/agents`);
        return (await page.locator('tr[data-agent="browser-agent"] .badge').count()) === 1;
      }, 30000).catch((e) => { throw new Error(`${e.message}; agent stderr:\n${stderr}`); });
      const row = page.locator('tr[data-agent="browser-agent"]');
      assert.equal(await row.locator(".badge").textContent(), "connected");
      assert.deepEqual(await row.locator(".label").allTextContents(), ["env=browser", "zone=b"]);
      assert.equal(await row.locator("td").nth(1).textContent(), "host", "its runtime");
      assert.equal(await page.locator("p.meta", { hasText: "connected" }).textContent(), "1 of 1 connected.");
      await shot(page, "agents");
    } finally {
      agent.kill("SIGKILL");
    }
  });

  await scenario("logout clears the cookie", async () => {
    await page.goto(base + "/");
    await Promise.all([page.waitForURL(/\/login/), page.click(".who button")]);
    await page.goto(base + "/executions");
    assert.equal(new URL(page.url()).pathname, "/login");
  });
} finally {
  await browser.close();
}

console.log(`${results.length} passed, 0 failed`);
console.log("all dashboard scenarios passed");
