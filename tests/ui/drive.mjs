// Drives the wasmq web UI in Debian's headless Chromium for tests/e2e_ui.rs:
// login, submit, live progress, details, stop, delete; screenshots; one line of JSON per step on stdout.
//
// Input (environment): WASMQ_URL, WASMQ_TOKEN (admin), WASMQ_OUT (screenshot directory),
// WASMQ_PLUGIN_NAME and WASMQ_PLUGIN_VERSION (the chaos plugin's), WASMQ_REJECTED (a refused file's name). After the job is Cancelled it prints
// {"step":"cancelled","id":...} and waits for a line on stdin before deleting it.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const url = need("WASMQ_URL");
const token = need("WASMQ_TOKEN");
const out = need("WASMQ_OUT");
const pluginName = need("WASMQ_PLUGIN_NAME");
const pluginVersion = need("WASMQ_PLUGIN_VERSION");
const rejectedFile = need("WASMQ_REJECTED");
const TIMEOUT = 60_000;
const JOB_NAME = "ui-e2e-slow";
const TASKS = 60;
const SLOW_MS = 1000;

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`drive.mjs: ${name} is not set`); process.exit(2); }
  return v;
}

function report(step, fields = {}) { console.log(JSON.stringify({ step, ...fields })); }

function check(cond, message) { if (!cond) throw new Error(`check failed: ${message}`); }

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

mkdirSync(out, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "wasmq-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 900 },
  deviceScaleFactor: 1,
  acceptDownloads: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
context.setDefaultTimeout(TIMEOUT);
let failed = false;
try {
  await drive(context.pages()[0] || await context.newPage());
} catch (e) {
  failed = true;
  console.error(e && e.stack ? e.stack : String(e));
  try { await context.pages()[0].screenshot({ path: join(out, "failure.png") }); } catch (_) { /* best effort */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  stdin.close();
}
process.exit(failed ? 1 : 0);

async function drive(page) {
  const browserErrors = [];
  page.on("pageerror", (e) => browserErrors.push(String(e)));

  // Login: "/" leads to the UI, which asks for a token; a bad one shows the server's error.
  await page.goto(`${url}/`);
  await page.waitForURL(/\/ui\/#\/login$/);
  await page.fill("#token", "not-a-token");
  await page.click("button[type=submit]");
  const loginError = page.locator("#login-error");
  await loginError.waitFor({ state: "visible" });
  const loginErrorText = await loginError.textContent();
  check(/not valid/.test(loginErrorText), `login error shows the server's message: ${loginErrorText}`);
  report("bad-token", { message: loginErrorText });
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.locator("#jobs-table").waitFor();
  await page.locator("#live.on").waitFor();
  report("login");

  // A marker that a reload would erase: progress must come over the live stream.
  await page.evaluate(() => { window.__noReload = "still here"; });

  // The submit form, built from the chaos plugin's params schema.
  await page.click("nav a[data-nav=submit]");
  const form = page.locator("form.submit");
  await form.waitFor();
  await form.locator("select[name=type]").selectOption("chaos");
  await form.locator("[name='params.tasks']").waitFor();
  await form.locator("input[name=path]").fill("/content/dam/ui-e2e");
  await form.locator("input[name=name]").fill(JOB_NAME);
  await form.locator("input[name=description]").fill("slow chaos job driven by the browser test");
  await form.locator("[name='params.tasks']").fill(Array(TASKS).fill("slow").join("\n"));

  // Bad input: the server's 400 names params.slowMs and the form shows it next to that field.
  await form.locator("[name='params.slowMs']").fill("-5");
  await page.click("#submit-button");
  const fieldError = form.locator(".field[data-field='params.slowMs'] .field-error");
  await fieldError.waitFor({ state: "visible" });
  const fieldErrorText = await fieldError.textContent();
  check(/minimum|less than|-5/i.test(fieldErrorText), `params.slowMs shows the server's reason: ${fieldErrorText}`);
  check(page.url().endsWith("#/submit"), "a refused job stays on the form");
  const submitShot = join(out, "submit-error.png");
  await page.screenshot({ path: submitShot });
  report("field-error", { field: "params.slowMs", message: fieldErrorText, screenshot: submitShot });

  await form.locator("[name='params.slowMs']").fill(String(SLOW_MS));
  await page.click("#submit-button");
  await page.waitForURL(/#\/jobs$/);
  const row = page.locator("#jobs tr", { hasText: JOB_NAME });
  await row.waitFor();
  const id = await row.getAttribute("data-job-id");
  check(id, "the new job's row has an id");
  report("submitted", { id });

  // Live progress: the bar's value rises at least twice with no reload.
  const bar = page.locator(`#jobs tr[data-job-id="${id}"] progress`);
  const seen = [];
  const deadline = Date.now() + TIMEOUT;
  let rises = 0;
  while (rises < 3 && Date.now() < deadline) {
    const v = await bar.evaluate((el) => el.value).catch(() => null);
    if (v !== null && (seen.length === 0 || v !== seen[seen.length - 1])) {
      if (seen.length > 0 && v > seen[seen.length - 1]) rises++;
      seen.push(v);
    }
    await page.waitForTimeout(100);
  }
  check(rises >= 2, `progress rose at least twice: ${JSON.stringify(seen)}`);
  check(seen[seen.length - 1] < 100, `the job is still running: ${JSON.stringify(seen)}`);
  check(await page.evaluate(() => window.__noReload) === "still here", "the page was not reloaded");
  const jobsShot = join(out, "jobs-running.png");
  await page.screenshot({ path: jobsShot });
  report("progress", { values: seen, screenshot: jobsShot });

  // Pause and resume from the table.
  const rowNow = page.locator(`#jobs tr[data-job-id="${id}"]`);
  await rowNow.locator("button[data-action=pause]").click();
  await rowNow.locator(".badge[data-state=Paused]").waitFor();
  await rowNow.locator("button[data-action=resume]").click();
  await rowNow.locator(".badge[data-state=Active]").waitFor();
  report("paused-resumed");

  // Text filter: the server's text search keeps the job and drops it for other words.
  await page.fill("#filter-text", "driven by the browser");
  await page.locator("#jobs-total", { hasText: "1 job" }).waitFor();
  await row.waitFor();
  await page.fill("#filter-text", "no such words anywhere");
  await page.locator("#jobs .empty").waitFor();
  await page.fill("#filter-text", "");
  await row.waitFor();
  report("filter");

  // Details: parameters, plugin version, live log lines, per-item report.
  await row.locator("button[data-action=details]").click();
  await page.waitForURL(new RegExp(`#/jobs/${id}$`));
  const params = page.locator("#job-params");
  await params.filter({ hasText: "slowMs" }).waitFor();
  const paramsText = await params.textContent();
  check(paramsText.includes(`"slowMs": ${SLOW_MS}`), `parameters are shown: ${paramsText}`);
  const plugin = page.locator("[data-fact=Plugin]");
  await plugin.filter({ hasText: pluginVersion }).waitFor();
  const log = page.locator("#job-log");
  await log.filter({ hasText: `submitted by` }).waitFor();
  await page.locator("#job-tasks tr[data-seq]").first().waitFor();
  const detailsShot = join(out, "job-details.png");
  await page.screenshot({ path: detailsShot });
  report("details", { plugin: await plugin.textContent(), logLines: (await log.textContent()).split("\n").length, screenshot: detailsShot });

  // Stop it; the state reaches Cancelled over the live stream.
  await page.click(".head button[data-action=stop]");
  await page.locator(".head .badge[data-state=Cancelled]").waitFor();
  await log.filter({ hasText: "cancel requested by" }).waitFor();
  report("cancelled", { id });
  const go = await lines.next();
  check(!go.done, "the test said to go on");

  // The CSV report downloads through a blob link.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(".head button[data-action=csv]")]);
  const csv = readFileSync(await download.path(), "utf8");
  check(csv.split("\n").length > 1, `the CSV has rows: ${csv.slice(0, 200)}`);
  report("csv", { file: download.suggestedFilename(), header: csv.split("\n")[0] });

  // Back to the table: delete it there; the row disappears.
  await page.click("nav a[data-nav=jobs]");
  const gone = page.locator(`#jobs tr[data-job-id="${id}"]`);
  await gone.locator(".badge[data-state=Cancelled]").waitFor();
  await gone.locator("button[data-action=delete]").click();
  await gone.waitFor({ state: "detached" });
  report("deleted", { id });

  // The plugins page lists versions, status and digests.
  await page.click("nav a[data-nav=plugins]");
  await page.locator(`#plugins-table tr[data-plugin="${pluginName}"]`, { hasText: pluginVersion }).waitFor();
  const refused = page.locator("#rejected-table tr", { hasText: rejectedFile });
  await refused.waitFor();
  check((await refused.textContent()).length > rejectedFile.length + 10, "a refused file shows its reason");
  const pluginsShot = join(out, "plugins.png");
  await page.screenshot({ path: pluginsShot });
  report("plugins", { screenshot: pluginsShot });

  check(browserErrors.length === 0, `no script errors in the page: ${browserErrors.join("; ")}`);
  report("done");
}
