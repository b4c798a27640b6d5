// No message HTML runs script, and no request leaves for a remote image
// until the reader asks. A local HTTP listener plays every remote
// address the message names; it must see nothing but the two images, and
// those only after "Load remote images".
//
// node security.mjs BASE_URL SMTP_HOST:PORT SCREENSHOT_DIR
// Prints one JSON line: what the listener saw, when.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { launch, expect, waitLive } from "./lib.mjs";

const [base, smtp, shots] = process.argv.slice(2);
const seen = [];
const listener = createServer((request, response) => {
  seen.push(request.url);
  const pixel = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk+A8AAQUBAScY42YAAAAASUVORK5CYII=",
    "base64",
  );
  response.writeHead(200, { "Content-Type": "image/png" });
  response.end(pixel);
});
await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
const remote = `http://127.0.0.1:${listener.address().port}`;

const html = `<html><head>
<meta http-equiv="refresh" content="1;url=${remote}/refresh">
<link rel="stylesheet" href="${remote}/stylesheet">
<script>document.title = "pwned-script"; fetch("${remote}/script");</script>
</head><body>
<h1 id="hello">Hello</h1>
<img src="${remote}/remote.png" alt="remote">
<img src="x-broken" onerror="fetch('${remote}/onerror'); top.document.title = 'pwned-onerror'">
<div style="background-image: url('${remote}/background.png'); width: 10px; height: 10px"></div>
<svg onload="fetch('${remote}/svg')"></svg>
<iframe src="javascript:fetch('${remote}/javascript-url')"></iframe>
<form action="${remote}/form" method="post"><button id="submit">go</button></form>
<a id="link" href="${remote}/link">a link</a>
</body></html>`;
const message = [
  "From: Mallory <mallory@example.org>",
  "To: victim@example.com",
  `Subject: Totally harmless ${listener.address().port}`,
  "MIME-Version: 1.0",
  "Content-Type: text/html; charset=utf-8",
  "",
  html,
  "",
].join("\r\n");

const report = {};
const browser = await launch();
const { page, context, problems } = browser;
try {
  await page.goto(base);
  await page.waitForSelector("#main:not([hidden])");
  await waitLive(page);
  const title = await page.title();
  const file = join(shots, "hostile.eml");
  writeFileSync(file, message);
  execFileSync("swaks", ["--server", smtp, "--from", "mallory@example.org", "--to", "victim@example.com",
    "--data", `@${file}`, "--silent", "2"]);
  const row = page.locator("#rows tr.row", { hasText: `Totally harmless ${listener.address().port}` });
  await row.waitFor({ timeout: 10000 });
  await row.click();
  const frame = page.frameLocator("#m-html");
  await frame.locator("#hello").waitFor({ timeout: 10000 });
  // Time for a script, a handler, a refresh or an image to fire.
  await page.waitForTimeout(2000);
  report.beforeAsking = [...seen];
  report.titleBefore = await page.title();
  report.remoteNoteShown = await page.isVisible("#remote-note");
  // Clicking the form's button may not post anywhere either.
  await frame.locator("#submit").click();
  await page.waitForTimeout(500);

  await page.click("#load-remote");
  await frame.locator("#hello").waitFor();
  const deadline = Date.now() + 10000;
  while (!seen.includes("/remote.png") && Date.now() < deadline) await page.waitForTimeout(100);
  await page.waitForTimeout(1500);
  report.afterAsking = [...seen].sort();
  report.titleAfter = await page.title();
  report.titleUnchanged = report.titleAfter === title;
  await page.screenshot({ path: join(shots, "security.png") });
  report.screenshot = join(shots, "security.png");
  // Nothing that ran script: only the two images, and only when asked.
  expect(report.beforeAsking.length === 0, `requests before asking: ${report.beforeAsking}`);
  expect(report.titleUnchanged, `title changed to ${report.titleAfter}`);
  const allowed = new Set(["/remote.png", "/background.png"]);
  const others = report.afterAsking.filter((u) => !allowed.has(u));
  expect(others.length === 0, `requests that should never leave: ${others}`);
  expect(report.afterAsking.includes("/remote.png"), "the remote image did not load when asked");
  // The blocked requests are the page's expected CSP reports, not errors.
  report.pageErrors = problems.filter(
    (p) => !p.includes("Content Security Policy") && !p.includes("Refused") && !p.includes("Blocked"),
  );
  report.blocked = problems.length - report.pageErrors.length;
  expect(report.pageErrors.length === 0, "the page reported errors", report.pageErrors);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
  listener.close();
  void context;
}
