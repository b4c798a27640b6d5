// The fixture view (capture mode): swaks sends a message with a Bcc
// recipient while the page is open; its rows appear without a reload;
// the message opens; the HTML tab shows its HTML; the envelope tab names
// the Bcc recipient; a screenshot is saved.
//
// node fixture.mjs BASE_URL SMTP_HOST:PORT SCREENSHOT_DIR
// Prints one JSON line: what the page showed.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { launch, expect, waitLive } from "./lib.mjs";

const [base, smtp, shots] = process.argv.slice(2);
const report = {};
const browser = await launch();
const { page, problems } = browser;
try {
  await page.goto(base);
  await page.waitForSelector("#main:not([hidden])");
  await waitLive(page);
  const before = await page.locator("#rows tr.row").count();
  const loads = [];
  page.on("load", () => loads.push(page.url()));

  const message = [
    "From: Ann Example <ann@example.org>",
    "To: Bob <bob@example.com>",
    "Subject: Your order has shipped",
    "MIME-Version: 1.0",
    'Content-Type: multipart/alternative; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Hello Bob, order 1234 is on its way.",
    "--b1",
    "Content-Type: text/html; charset=utf-8",
    "",
    '<html><body><h1 id="headline">Order 1234 shipped</h1><p>Hello <b>Bob</b>, it is on its way.</p></body></html>',
    "--b1--",
    "",
  ].join("\r\n");
  const file = join(shots, "order.eml");
  writeFileSync(file, message);
  execFileSync("swaks", [
    "--server", smtp, "--from", "ann@example.org",
    // audit@ is a Bcc: an envelope recipient the header does not name.
    "--to", "bob@example.com,audit@example.net",
    "--data", file, "--silent", "2",
  ]);

  // Two copies (Bob's and the Bcc's) arrive as rows, live.
  await page.waitForFunction(
    (n) => document.querySelectorAll("#rows tr.row").length >= n + 2,
    before,
    { timeout: 10000 },
  );
  expect(loads.length === 0, "the page reloaded", problems);
  const rows = page.locator("#rows tr.row", { hasText: "Your order has shipped" });
  report.rows = await rows.count();
  report.listedTo = (await page.locator("#rows tr.row td.c-to").allTextContents()).sort();
  const bccRow = page.locator("#rows tr.row", { hasText: "audit@example.net" });
  report.unreadBefore = await bccRow.evaluate((r) => r.classList.contains("unread"));
  await bccRow.click();

  await page.waitForSelector("#message:not([hidden])");
  report.subject = await page.textContent("#m-subject");
  const frame = page.frameLocator("#m-html");
  report.headline = await frame.locator("#headline").textContent({ timeout: 10000 });
  report.htmlBold = await frame.locator("b").textContent();
  report.frameSandbox = await page.getAttribute("#m-html", "sandbox");
  report.unreadAfter = await bccRow.evaluate((r) => r.classList.contains("unread"));

  await page.click('.tabs [data-tab="envelope"]');
  await page.waitForSelector("#m-envelope tr");
  report.envelope = await page.locator("#m-envelope tr").allTextContents();
  await page.click('.tabs [data-tab="transcript"]');
  await page.waitForFunction(() => document.getElementById("m-transcript").textContent.includes("DATA"));
  report.transcriptHasRcpt = (await page.textContent("#m-transcript")).includes("RCPT TO:<audit@example.net>");
  await page.click('.tabs [data-tab="text"]');
  report.text = (await page.textContent("#m-text")).trim();
  await page.click('.tabs [data-tab="html"]');
  await frame.locator("#headline").waitFor();
  await page.screenshot({ path: join(shots, "fixture.png") });
  report.screenshot = join(shots, "fixture.png");
  expect(problems.length === 0, "the page reported errors", problems);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
