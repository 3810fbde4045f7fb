// Two pages in headless Chromium and the lesson's Python UDP client in one
// chat room (chat_server --lesson --web). Run by tests/chat_web.rs:
//
//   node chat.mjs WEB_URL UDP_HOST UDP_PORT LESSON_CLIENT_PY SCREENSHOT_PNG
//
// Exits 0 and prints "browser test passed" only if every check held.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

const [url, udpHost, udpPort, lessonClient, screenshot] = process.argv.slice(2);
const WAIT = 10_000;

function fail(why) {
  console.error("FAILED: " + why);
  process.exit(1);
}

// The lesson's client: sends `line`, prints the one datagram it receives.
function python(line) {
  return new Promise((resolve, reject) => {
    const p = spawn("python3", [lessonClient, udpHost, udpPort, line]);
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => { p.kill(); reject(new Error("python hung: " + err)); }, WAIT);
    p.on("close", (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(out.trimEnd()) : reject(new Error(`python exited ${code}: ${err}`));
    });
  });
}

const lines = (page) => page.$$eval("#log > *", (els) => els.map((e) => e.textContent));

async function waitLine(page, text, what) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll("#log > *")].some((e) => e.textContent === t),
      text, { timeout: WAIT });
  } catch {
    fail(`${what}: ${JSON.stringify(text)} never appeared; log: ${JSON.stringify(await lines(page))}`);
  }
}

async function say(page, text) {
  await page.fill("#message", text);
  await page.press("#message", "Enter");
}

async function open(context) {
  const page = await context.newPage();
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => fail("script error in the page: " + e));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("you are "),
    null, { timeout: WAIT });
  return page;
}

const dialogs = [];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  const a = await open(context);
  const b = await open(context);
  await waitLine(a, "* guest-2 joined", "page A hears page B join");

  // Names, typed in the name field, sent as /nick with the first message.
  await a.fill("#name", "alice");
  await say(a, "hi bob");
  await waitLine(b, "* guest-1 is now known as alice", "B hears A's new name");
  await waitLine(b, "[alice] hi bob", "A to B");
  await b.fill("#name", "bob");
  await say(b, "hi alice");
  await waitLine(a, "[bob] hi alice", "B to A");

  // Page to the lesson's client: an empty line makes it a member that
  // says nothing, so its one recv() gets the next thing the room says.
  const listening = python("");
  await waitLine(a, "* guest-3 joined", "the Python client joins");
  await say(a, "hello python");
  const heard = await listening;
  if (heard !== "[alice] hello python") fail("Python heard " + JSON.stringify(heard));

  // The lesson's client to both pages (and its own line back).
  const own = await python("hello from python");
  if (own !== "[guest-4] hello from python") fail("Python printed " + JSON.stringify(own));
  await waitLine(a, "[guest-4] hello from python", "Python to A");
  await waitLine(b, "[guest-4] hello from python", "Python to B");

  // A message that is HTML shows as those characters, and runs nothing.
  const xss = "<img src=x onerror=alert(1)>";
  await say(b, xss);
  await waitLine(a, "[bob] " + xss, "the XSS line as text on A");
  await waitLine(b, "[bob] " + xss, "the XSS line as text on B");
  for (const p of [a, b]) {
    if ((await p.$$("#log img")).length) fail("an <img> element was created from a message");
  }
  if (dialogs.length) fail("a dialog opened: " + dialogs.join(", "));

  await say(a, "/who");
  await waitLine(a, "* 4 in the room: alice, bob, guest-3, guest-4", "/who from a page");

  // The screenshot for docs/: page A beside the lesson's client's terminal.
  const page = await a.screenshot();
  const shot = await context.newPage();
  await shot.setViewportSize({ width: 1100, height: 500 });
  const term = [
    `$ python3 tests/python/lesson_chat_client.py ${udpHost} PORT ''`,
    heard,
    `$ python3 tests/python/lesson_chat_client.py ${udpHost} PORT 'hello from python'`,
    own,
  ].join("\n");
  await shot.setContent(`<body style="margin:0;display:flex;gap:12px;background:#ddd;padding:12px">
    <img style="border:1px solid #999" src="data:image/png;base64,${page.toString("base64")}">
    <pre id="t" style="margin:0;flex:1;background:#111;color:#ddd;padding:10px;font:13px monospace;white-space:pre-wrap"></pre></body>`);
  await shot.$eval("#t", (el, t) => { el.textContent = t; }, term);
  await shot.screenshot({ path: screenshot });
  await shot.close();

  // Closing a page makes its member leave.
  await b.close();
  await waitLine(a, "* bob left", "B's member leaves when its page closes");

  // /quit from a page ends its stream without reconnecting.
  await say(a, "/quit");
  await waitLine(a, "* goodbye, alice", "A's goodbye");
  readFileSync(screenshot);
  console.log("browser test passed");
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
